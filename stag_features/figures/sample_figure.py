"""One committed sample as a PNG: its face with ROI boxes, flow as a colour wheel, AU cues as bars
(``stag inspect sample STORE ID`` calls this). The title names the store, the sample, its emotion
and the frame whose flow is drawn.

Panels, left to right:
  1. the sample's face: the aligned onset face with its landmarks, or, for a store without one
     (the MEGC 2019 composite), its apex face where the store has an ``apex_face`` array; ROI
     boxes numbered in outlined text, their names in a key under the panel. Without any face
     image the boxes are drawn on grey and the panel says so.
  2. the flow onset -> the selected frame that moves most, as colour: hue is
     the direction (red right, then counter-clockwise in image coordinates),
     saturation full, brightness the magnitude up to the ``clip_percentile``
     of magnitudes (so one outlier does not darken everything); the colour-wheel
     key beside the panel, outside the data.
  3. the AU activation cue at that frame: one bar per group of AUs the cue cannot tell apart
     (the same regions moved the same way, e.g. AU5/AU7: one bar named by both); bars of AUs the
     sheet codes are drawn in a second colour.
"""
from __future__ import annotations

import textwrap
from pathlib import Path

import cv2
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from stag_features.figures.drawing import au_groups, draw_rois, stored_face  # noqa: E402
from stag_features.store.query import open_store  # noqa: E402

CLIP_PERCENTILE = 99.0  # brightness saturates at this percentile of flow magnitude
WHEEL_SIZE = 101  # pixels of the colour-wheel key
FIGURE_SIZE = (14.0, 5.6)  # inches
DPI = 110
CODED, NOT_CODED = "tab:orange", "tab:blue"
UNITS_WIDTH = 60  # characters per line of the flow units under the flow panel


def flow_to_colour(flow: np.ndarray, clip_percentile: float = CLIP_PERCENTILE, top: float | None = None) -> np.ndarray:
    """(2, H, W) flow -> (H, W, 3) uint8 RGB: hue = direction, value = magnitude, full
    brightness at ``top`` (default: the ``clip_percentile`` of the magnitudes)."""
    u, v = np.asarray(flow[0], np.float32), np.asarray(flow[1], np.float32)
    magnitude, angle = cv2.cartToPolar(u, v)  # angle in radians, 0..2pi
    if top is None:
        top = float(np.percentile(magnitude, clip_percentile)) or 1.0
    hsv = np.zeros((*u.shape, 3), np.uint8)
    hsv[..., 0] = (angle * 90.0 / np.pi).astype(np.uint8)  # OpenCV hue runs 0..179
    hsv[..., 1] = 255
    hsv[..., 2] = np.clip(magnitude / top * 255.0, 0, 255).astype(np.uint8)
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)


def colour_wheel(size: int) -> np.ndarray:
    """The key of ``flow_to_colour``: (size, size, 3) RGB, a disc of unit flows growing outwards."""
    axis = np.linspace(-1, 1, size, dtype=np.float32)
    x, y = np.meshgrid(axis, axis)
    wheel = flow_to_colour(np.stack([x, y]), top=1.0)
    wheel[np.hypot(x, y) > 1] = 255
    return wheel


def render_sample(store_path: str | Path, sample_id: str, out_path: str | Path) -> Path:
    """Write the three-panel figure of ``sample_id`` to ``out_path`` (PNG); returns the path.

    Raises KeyError naming the store if the sample is not committed there.
    """
    ds = open_store(store_path)
    if sample_id not in set(ds["sample"].values):
        shown = ", ".join(map(str, ds["sample"].values[:3]))
        raise KeyError(f"store {store_path} holds no committed sample {sample_id!r} (ids look like {shown})")
    one = ds.sel(sample=sample_id).load()
    flow = one["flow"].values.astype(np.float32)  # (K, 2, H, W)
    strongest = int(np.argmax(np.hypot(flow[:, 0], flow[:, 1]).mean(axis=(1, 2))))
    figure, (face_ax, flow_ax, au_ax) = plt.subplots(1, 3, figsize=FIGURE_SIZE, layout="constrained",
                                                     gridspec_kw={"width_ratios": [1, 1.25, 1.6]})
    _face_panel(face_ax, one, flow.shape[-2:])
    frame = _frame_label(one, strongest)
    _flow_panel(flow_ax, flow[strongest], frame, str(ds.attrs.get("flow_units")))
    _au_panel(au_ax, one, strongest, ds.attrs.get("pipeline_config"))
    figure.suptitle(f"store {Path(store_path).name} ({ds.attrs.get('dataset')})   sample {sample_id}   "
                    f"emotion {one['emotion'].item()}   flow onset -> {frame}")
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(out_path, dpi=DPI, bbox_inches="tight")  # the ROI key under the face included
    plt.close(figure)
    return out_path


def _frame_label(one, k: int) -> str:
    """'frame N' of the k-th selected frame: its number in the clip where the store has frame
    numbers, else its position among the clip's analysed frames."""
    position = int(one["selected_frames"].values[k])
    numbers = one["frame_numbers"].values if "frame_numbers" in one else np.empty(0)
    if 0 <= position < len(numbers) and numbers[position] > 0:
        return f"frame {int(numbers[position])}"
    return f"position {position}"


def _face_panel(ax, one, flow_shape: tuple[int, int]) -> None:
    face, kind = stored_face(one)
    if face is None:  # a store of flow images without faces: the ROI layout on the flow grid
        ax.imshow(np.full(flow_shape, 128, np.uint8), cmap="gray", vmin=0, vmax=255)
        ax.set_title("no face image in this store:\nROIs on the flow grid", fontsize=9)
        scale = 1.0
    else:
        ax.imshow(face, cmap="gray", vmin=0, vmax=255)
        scale = face.shape[0] / flow_shape[0]  # an apex face may be larger than the flow
        landmarks = one["landmarks_onset"].values * scale
        if kind.startswith("aligned") and np.isfinite(landmarks).all() and np.ptp(landmarks) > 0:
            ax.scatter(landmarks[:, 0], landmarks[:, 1], s=4, c="cyan")
            kind += ", landmarks"
        ax.set_title(f"{kind}, ROIs", fontsize=9)
    draw_rois(ax, one["roi_boxes"].values, [str(n) for n in one["roi"].values], scale=scale)
    ax.set_xticks([])
    ax.set_yticks([])


def _flow_panel(ax, flow: np.ndarray, frame: str, units: str) -> None:
    ax.imshow(flow_to_colour(flow))
    peak = float(np.hypot(flow[0], flow[1]).max())
    ax.set_title(f"flow onset -> {frame} (max {peak:.2f})", fontsize=9)
    ax.set_xlabel(textwrap.fill(units, UNITS_WIDTH), fontsize=7)
    ax.set_xticks([])
    ax.set_yticks([])
    key = ax.inset_axes((1.03, 0.62, 0.32, 0.32))  # beside the panel: the key covers no data
    key.imshow(colour_wheel(WHEEL_SIZE))
    key.set_title("direction\n(brightness: speed)", fontsize=6)
    key.axis("off")


def _au_panel(ax, one, frame: int, pipeline_config: dict | None) -> None:
    names = [str(n) for n in one["au"].values]
    values = one["au_activation"].values[frame]
    coded = one["au_truth"].values == 1
    groups = au_groups(names, pipeline_config)
    heights = [float(np.mean(values[g])) for g in groups]
    colours = [CODED if coded[g].any() else NOT_CODED for g in groups]
    ax.bar(range(len(groups)), heights, color=colours)
    ax.set_xticks(range(len(groups)), ["/".join(names[i] for i in g) for g in groups], rotation=60, fontsize=7,
                  ha="right", rotation_mode="anchor")
    ax.set_ylabel("flow-derived AU cue", fontsize=8)
    shared = [g for g in groups if len(g) > 1]
    note = "; " + ", ".join("/".join(names[i] for i in g) for g in shared) + ": one cue (same regions, direction)" \
        if shared else ""
    ax.set_title(f"AU cue at this frame (orange: coded in the sheet){note}", fontsize=8, wrap=True)
