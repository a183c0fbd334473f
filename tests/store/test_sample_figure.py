"""The sample figure: colour coding of flow and a rendered PNG."""
from __future__ import annotations

import cv2
import numpy as np

from stag_features.figures.sample_figure import colour_wheel, flow_to_colour, render_sample
from stag_features.store.slots import write_sample
from stag_features.store.writer import allocate_slots, ensure_store


def test_flow_colour_codes_direction_as_hue_and_magnitude_as_brightness():
    right = np.zeros((2, 4, 4), np.float32)
    right[0] = 1.0
    rgb = flow_to_colour(right)
    assert (rgb[..., 0] == 255).all() and (rgb[..., 1:] == 0).all()  # rightward flow is pure red
    assert (flow_to_colour(np.zeros((2, 4, 4), np.float32)) == 0).all()  # no motion is black
    half = right.copy()
    half[0, :2] = 0.5
    shade = flow_to_colour(half, clip_percentile=100.0)
    assert shade[0, 0, 0] < shade[3, 0, 0] == 255  # slower is darker, same hue
    wheel = colour_wheel(33)
    assert (wheel[0, 0] == 255).all() and wheel[16, 32, 0] > 200  # outside the disc white; right edge red


def test_render_sample_writes_a_three_panel_png(tmp_path, make_features, make_identity):
    store = tmp_path / "tiny.zarr"
    ensure_store(store, make_identity())
    slot = allocate_slots(store, ["s1/a"])["s1/a"]
    write_sample(store, slot, make_features("s1/a", 0), "h")
    out = render_sample(store, "s1/a", tmp_path / "figure.png")
    image = cv2.imread(str(out))
    assert image is not None and image.shape[1] > 2 * image.shape[0]  # three panels side by side
    assert image.std() > 10  # not blank
