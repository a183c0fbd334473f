"""Facial regions of interest: named boxes built from the 68 landmarks.

Every output follows the order of ``RoiConfig.rois``; reordering the ROIs in
the config reorders the outputs and changes nothing else.

Box of ROI r on a face with landmarks L and inter-ocular distance d (outer eye
corners, ``RoiConfig.iod_landmarks``):
    x0 = min_i L[i, x] - m * d      x1 = max_i L[i, x] + m * d   (i in r.landmarks)
    y0 = min_i L[i, y] - m * d      y1 = max_i L[i, y] + m * d   (m = r.margin)
then clipped to the image (``image_size``), so margins scale with the face.
"""
from __future__ import annotations

import numpy as np

from schemas.face_config import RoiConfig


def roi_names(config: RoiConfig) -> list[str]:
    """ROI names in config order."""
    return [roi.name for roi in config.rois]


def inter_ocular_distance(landmarks: np.ndarray, config: RoiConfig | None = None) -> float:
    """Distance (px) between the outer eye corners (iBUG 36 and 45 by default)."""
    left, right = (config or RoiConfig()).iod_landmarks
    landmarks = np.asarray(landmarks, dtype=np.float64)
    return float(np.linalg.norm(landmarks[left] - landmarks[right]))


def roi_boxes(landmarks: np.ndarray, config: RoiConfig, image_size: int | tuple[int, int] | None = None) -> np.ndarray:
    """(R, 4) float32 boxes (x0, y0, x1, y1) of the configured ROIs.

    ``image_size`` (S, or (height, width); on aligned crops
    ``AlignConfig.crop_size``) clips the boxes to the image; None clips only
    at 0 (the far edges are then unknown).
    """
    landmarks = np.asarray(landmarks, dtype=np.float64)
    if landmarks.shape != (68, 2):
        raise ValueError(f"roi_boxes: landmarks must be (68, 2), got {landmarks.shape}")
    if not np.all(np.isfinite(landmarks)):
        raise ValueError("roi_boxes: landmarks contain NaN or inf")
    iod = inter_ocular_distance(landmarks, config)
    if image_size is None:
        height = width = np.inf
    elif isinstance(image_size, int):
        height = width = float(image_size)
    else:
        height, width = (float(v) for v in image_size)
    boxes = np.empty((len(config.rois), 4), dtype=np.float32)
    for r, roi in enumerate(config.rois):
        points = landmarks[list(roi.landmarks)]
        grow = roi.margin * iod
        (x0, y0), (x1, y1) = points.min(axis=0) - grow, points.max(axis=0) + grow
        boxes[r] = (np.clip(x0, 0, width), np.clip(y0, 0, height), np.clip(x1, 0, width), np.clip(y1, 0, height))
    return boxes


def au_roi_indices(config: RoiConfig) -> dict[int, list[int]]:
    """For each AU in the map, the indices (config order) of the ROIs it moves."""
    index = {name: i for i, name in enumerate(roi_names(config))}
    return {au: sorted(index[name] for name in names) for au, names in sorted(config.au_rois.items())}


def static_edges(config: RoiConfig) -> np.ndarray:
    """(E, 2) int32 undirected adjacency edges as ROI index pairs, i < j, sorted."""
    index = {name: i for i, name in enumerate(roi_names(config))}
    edges = {tuple(sorted((index[a], index[b]))) for a, b in config.adjacency}
    return np.array(sorted(edges), dtype=np.int32).reshape(-1, 2)


def roi_centres(boxes: np.ndarray) -> np.ndarray:
    """(R, 2) float32 centres (x, y) of (R, 4) boxes."""
    boxes = np.asarray(boxes, dtype=np.float32)
    return np.stack([(boxes[:, 0] + boxes[:, 2]) / 2, (boxes[:, 1] + boxes[:, 3]) / 2], axis=1)


def grown_boxes(boxes: np.ndarray, min_side: float, image_size: int) -> np.ndarray:
    """(R, 4) boxes grown about their centres to at least ``min_side`` on each side, then moved
    inside the ``image_size`` square where they cross an edge (a box keeps its size when it fits)."""
    boxes = np.asarray(boxes, dtype=np.float64)
    centre = (boxes[:, :2] + boxes[:, 2:]) / 2
    half = np.maximum((boxes[:, 2:] - boxes[:, :2]) / 2, min(min_side, image_size) / 2)
    low = np.clip(centre - half, 0, None)
    high = np.clip(low + 2 * half, None, image_size)
    low = np.clip(high - 2 * half, 0, None)
    return np.concatenate([low, high], axis=1).astype(np.float32)
