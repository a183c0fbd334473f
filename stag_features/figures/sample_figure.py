"""One committed sample as a PNG: aligned face with ROI boxes, flow as a colour
wheel, AU activations as bars (``stag inspect sample STORE ID`` calls this).

Panels, left to right:
  1. the aligned onset face with its landmarks and ROI boxes;
  2. the flow onset -> the selected frame that moves most, as colour: hue is
     the direction (red right, then counter-clockwise in image coordinates),
     saturation full, brightness the magnitude up to the ``clip_percentile``
     of magnitudes (so one outlier does not darken everything); a colour
     wheel key in the corner;
  3. the AU activation cue at that frame, bars for every AU; AUs the sheet
     codes are drawn in a second colour.
"""
from __future__ import annotations

from pathlib import Path

import cv2
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from stag_features.store.query import open_store  # noqa: E402

CLIP_PERCENTILE = 99.0  # brightness saturates at this percentile of flow magnitude
WHEEL_FRACTION = 0.22  # side of the colour-wheel key as a fraction of the flow image
FIGURE_SIZE = (13.0, 4.2)  # inches
DPI = 110


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
        raise KeyError(f"store {store_path} holds no committed sample {sample_id!r}")
    one = ds.sel(sample=sample_id).load()
    flow = one["flow"].values.astype(np.float32)  # (K, 2, H, W)
    strongest = int(np.argmax(np.hypot(flow[:, 0], flow[:, 1]).mean(axis=(1, 2))))
    figure, (face_ax, flow_ax, au_ax) = plt.subplots(1, 3, figsize=FIGURE_SIZE,
                                                     gridspec_kw={"width_ratios": [1, 1, 1.5]})
    _face_panel(face_ax, one)
    _flow_panel(flow_ax, flow[strongest], int(one["selected_frames"].values[strongest]), str(ds.attrs.get("flow_units")))
    _au_panel(au_ax, one, strongest)
    figure.suptitle(f"{ds.attrs.get('dataset')} {sample_id}  emotion: {one['emotion'].item()}")
    figure.tight_layout()
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(out_path, dpi=DPI)
    plt.close(figure)
    return out_path


def _face_panel(ax, one) -> None:
    face = one["onset_face"].values
    ax.imshow(face, cmap="gray", vmin=0, vmax=255)
    landmarks = one["landmarks_onset"].values
    ax.scatter(landmarks[:, 0], landmarks[:, 1], s=4, c="cyan")
    for name, (x0, y0, x1, y1) in zip(one["roi"].values, one["roi_boxes"].values):
        ax.add_patch(plt.Rectangle((x0, y0), x1 - x0, y1 - y0, fill=False, edgecolor="yellow", linewidth=0.8))
    ax.set_title("aligned onset, landmarks, ROIs")
    ax.axis("off")


def _flow_panel(ax, flow: np.ndarray, position: int, units: str) -> None:
    image = flow_to_colour(flow)
    side = max(8, int(image.shape[0] * WHEEL_FRACTION))
    image[:side, -side:] = colour_wheel(side)
    ax.imshow(image)
    peak = float(np.hypot(flow[0], flow[1]).max())
    ax.set_title(f"flow onset -> position {position} (max {peak:.2f})")
    ax.set_xlabel(units, fontsize=7)
    ax.set_xticks([])
    ax.set_yticks([])


def _au_panel(ax, one, frame: int) -> None:
    names = list(one["au"].values)
    values = one["au_activation"].values[frame]
    coded = one["au_truth"].values == 1
    colours = np.where(coded, "tab:orange", "tab:blue")
    ax.bar(range(len(names)), values, color=colours)
    ax.set_xticks(range(len(names)), names, rotation=60, fontsize=7)
    ax.set_ylabel("flow-derived AU cue")
    ax.set_title("AU activation (orange: coded in the sheet)")
