"""Per-ROI flow features for each selected frame.

For a flow f = (u, v) of shape (K, 2, H, W) and ROI boxes (R, 4) given as
x0, y0, x1, y1 on the aligned crop:

- patch: the flow inside the box (pixel-aligned: columns floor(x0)..ceil(x1),
  clipped to the image, at least one pixel) resampled to P x P with area
  averaging when shrinking and bilinear interpolation when enlarging;
  flow values stay in px of the crop (resampling changes the grid, not the
  motion).
- statistics over the box pixels, in this order (``ROI_STAT_NAMES``):
  mean u, mean v, mean magnitude mean(sqrt(u^2 + v^2)), and the dominant
  direction: the centre (radians, atan2(v, u), image y down, in (-pi, pi])
  of the fullest bin of a magnitude-weighted histogram of pixel directions.
  A ROI where nothing moves faster than ``direction_min_magnitude`` gets
  direction 0 (its mean magnitude says it does not move).
"""
from __future__ import annotations

import cv2
import numpy as np

from schemas.motion_config import RoiFeatureConfig
from schemas.store_spec import ROI_STAT_NAMES  # the order the store spec fixes


def box_pixels(box: np.ndarray, shape: tuple[int, int]) -> tuple[int, int, int, int]:
    """Integer pixel bounds (x0, y0, x1, y1), half-open, clipped to the image and non-empty."""
    height, width = shape
    x0, y0, x1, y1 = (float(b) for b in box)
    if not (x1 > x0 and y1 > y0):
        raise ValueError(f"ROI box {box.tolist()} is empty or inverted (need x1 > x0 and y1 > y0)")
    ix0 = int(np.clip(np.floor(x0), 0, width - 1))
    iy0 = int(np.clip(np.floor(y0), 0, height - 1))
    ix1 = int(np.clip(np.ceil(x1), ix0 + 1, width))
    iy1 = int(np.clip(np.ceil(y1), iy0 + 1, height))
    return ix0, iy0, ix1, iy1


def _resample(channel: np.ndarray, size: int) -> np.ndarray:
    shrinking = channel.shape[0] >= size and channel.shape[1] >= size
    interp = cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR
    return cv2.resize(np.ascontiguousarray(channel, dtype=np.float32), (size, size), interpolation=interp)


def dominant_direction(u: np.ndarray, v: np.ndarray, bins: int, min_magnitude: float) -> float:
    """Centre angle (rad) of the fullest bin of the magnitude-weighted direction histogram."""
    magnitude = np.sqrt(u**2 + v**2)
    keep = magnitude > min_magnitude
    if not keep.any():
        return 0.0
    angle = np.arctan2(v[keep], u[keep])
    edges = np.linspace(-np.pi, np.pi, bins + 1)
    hist, _ = np.histogram(angle, bins=edges, weights=magnitude[keep])
    best = int(np.argmax(hist))
    return float(0.5 * (edges[best] + edges[best + 1]))


def roi_features(flow: np.ndarray, boxes: np.ndarray, config: RoiFeatureConfig) -> tuple[np.ndarray, np.ndarray]:
    """ROI flow patches (K, R, 2, P, P) and statistics (K, R, 4), both float32.

    ``flow`` is (K, 2, H, W); ``boxes`` (R, 4) x0, y0, x1, y1 on the same grid.
    """
    flow = np.asarray(flow, dtype=np.float32)
    boxes = np.asarray(boxes, dtype=np.float32)
    if flow.ndim != 4 or flow.shape[1] != 2:
        raise ValueError(f"roi_features: flow must be (K, 2, H, W), got {flow.shape}")
    if boxes.ndim != 2 or boxes.shape[1] != 4:
        raise ValueError(f"roi_features: boxes must be (R, 4), got {boxes.shape}")
    k, _, height, width = flow.shape
    size = config.patch_size
    patches = np.zeros((k, len(boxes), 2, size, size), dtype=np.float32)
    stats = np.zeros((k, len(boxes), len(ROI_STAT_NAMES)), dtype=np.float32)
    bounds = [box_pixels(box, (height, width)) for box in boxes]
    for f in range(k):
        for r, (x0, y0, x1, y1) in enumerate(bounds):
            u = flow[f, 0, y0:y1, x0:x1]
            v = flow[f, 1, y0:y1, x0:x1]
            patches[f, r, 0] = _resample(u, size)
            patches[f, r, 1] = _resample(v, size)
            stats[f, r] = (
                u.mean(),
                v.mean(),
                np.sqrt(u**2 + v**2).mean(),
                dominant_direction(u, v, config.direction_bins, config.direction_min_magnitude),
            )
    return patches, stats
