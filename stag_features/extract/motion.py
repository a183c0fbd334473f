"""Motion curve over every frame of a clip, frame ranking and apex estimate.

For each frame t of the aligned clip, a cheap dense flow (OpenCV DIS or
Farneback, on crops resized to ``MotionConfig.size``) from the onset frame to
frame t gives a per-pixel magnitude ``|f_t(x)|``; the motion curve is

    m(t) = stat_{x in face mask} |f_t(x) - g_t| * (crop_size / size)

(mean or 90th percentile, rescaled to pixels at crop size), with m(onset) = 0
and g_t the median flow vector over the face mask (residual head translation;
0 when ``remove_head_translation`` is off).
The face mask is the convex hull of the 68 onset landmarks, grown by
``face_margin``; background and hair do not count. Frames are ranked by
decreasing m(t); the apex estimate is the argmax of m smoothed by a centred
moving average (robust to a single noisy frame).
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from schemas.motion_config import MotionConfig
from stag_features.extract.flow import DIS_PRESETS


@dataclass
class MotionCurve:
    """Motion relative to onset over all analysed frames."""

    curve: np.ndarray  # (T,) float32  px at crop size
    ranked: np.ndarray  # (T,) int32    positions by decreasing motion (ties: earlier first)
    apex: int  # position of the smoothed curve's maximum


def face_mask(landmarks: np.ndarray, shape: tuple[int, int], margin: float) -> np.ndarray:
    """Boolean (H, W) mask: convex hull of the landmarks, grown about its centre by ``margin``."""
    pts = np.asarray(landmarks, dtype=np.float64)
    centre = pts.mean(axis=0)
    grown = centre + (pts - centre) * (1.0 + margin)
    hull = cv2.convexHull(np.round(grown).astype(np.int32))
    mask = np.zeros(shape, dtype=np.uint8)
    cv2.fillConvexPoly(mask, hull, 1)
    return mask.astype(bool)


class CheapFlow:
    """Fast dense flow at reduced size, (2, size, size) float32 in px at that size."""

    def __init__(self, config: MotionConfig):
        self.config = config
        if config.method == "dis":
            self._dis = cv2.DISOpticalFlow_create(DIS_PRESETS[config.dis_preset])

    def __call__(self, first: np.ndarray, second: np.ndarray) -> np.ndarray:
        c = self.config
        if c.method == "dis":
            flow = self._dis.calc(first, second, None)
        else:
            flow = cv2.calcOpticalFlowFarneback(
                first, second, None, c.farneback_pyr_scale, c.farneback_levels, c.farneback_winsize,
                c.farneback_iterations, c.farneback_poly_n, c.farneback_poly_sigma, 0,
            )
        return flow.transpose(2, 0, 1)


def _resize(image: np.ndarray, size: int) -> np.ndarray:
    if image.shape[0] == size and image.shape[1] == size:
        return np.ascontiguousarray(image)
    interp = cv2.INTER_AREA if image.shape[0] > size else cv2.INTER_LINEAR
    return cv2.resize(image, (size, size), interpolation=interp)


def face_motion(flow: np.ndarray, mask: np.ndarray, config: MotionConfig) -> float:
    """One motion number for a (2, H, W) flow: ``stat |f(x) - g|`` over the mask (module docstring)."""
    f = flow[:, mask]  # (2, N) inside the face
    if config.remove_head_translation:
        f = f - np.median(f, axis=1, keepdims=True)
    magnitude = np.sqrt(f[0] ** 2 + f[1] ** 2)
    return float(magnitude.mean() if config.statistic == "mean" else np.percentile(magnitude, 90))


def motion_curve(crops: np.ndarray, landmarks_onset: np.ndarray, config: MotionConfig,
                 onset: int = 0) -> np.ndarray:
    """Motion magnitude relative to ``crops[onset]`` for every frame, (T,) float32.

    ``crops`` is (T, S, S) uint8 grayscale aligned faces, ``landmarks_onset``
    (68, 2) on the onset crop. Values are in px at crop size S.
    """
    crops = np.asarray(crops)
    if crops.ndim != 3 or crops.shape[1] != crops.shape[2]:
        raise ValueError(f"motion_curve: expected (T, S, S) square grayscale crops, got {crops.shape}")
    side = crops.shape[1]
    size = min(config.size, side)
    to_small = size / side
    mask = face_mask(np.asarray(landmarks_onset) * to_small, (size, size), config.face_margin)
    if not mask.any():
        raise ValueError("motion_curve: the landmark face mask is empty; landmarks lie outside the crop")
    flow = CheapFlow(config)
    reference = _resize(crops[onset], size)
    curve = np.zeros(len(crops), dtype=np.float32)
    for t, crop in enumerate(crops):
        if t == onset:
            continue
        curve[t] = face_motion(flow(reference, _resize(crop, size)), mask, config) / to_small
    return curve


def rank_frames(curve: np.ndarray) -> np.ndarray:
    """Positions sorted by decreasing motion; ties keep time order. (T,) int32."""
    return np.argsort(-np.asarray(curve, dtype=np.float64), kind="stable").astype(np.int32)


def smooth_curve(curve: np.ndarray, window: int) -> np.ndarray:
    """Centred moving average with edge values repeated (length preserved)."""
    curve = np.asarray(curve, dtype=np.float64)
    if window <= 1 or len(curve) < 2:
        return curve.copy()
    half = window // 2
    padded = np.pad(curve, (half, window - 1 - half), mode="edge")
    return np.convolve(padded, np.ones(window) / window, mode="valid")


def estimate_apex(curve: np.ndarray, window: int, excluded: set[int] | frozenset[int] = frozenset()) -> int:
    """Position of the maximum of the smoothed curve (earliest on ties), never an ``excluded`` one."""
    smoothed = smooth_curve(curve, window)
    if excluded and len(excluded) < len(smoothed):
        smoothed[list(excluded)] = -np.inf
    return int(np.argmax(smoothed))


def analyse_motion(crops: np.ndarray, landmarks_onset: np.ndarray, config: MotionConfig,
                   onset: int = 0, excluded: set[int] | frozenset[int] = frozenset()) -> MotionCurve:
    """Motion curve, ranking and apex estimate for one aligned clip.

    ``excluded`` positions (frames without a face, kept when the face config
    says "skip") keep their measured motion but cannot be the apex estimate.
    """
    curve = motion_curve(crops, landmarks_onset, config, onset)
    apex = estimate_apex(curve, config.smooth_frames, excluded)
    return MotionCurve(curve=curve, ranked=rank_frames(curve), apex=apex)


def topk_overlap(ranked_a: np.ndarray, ranked_b: np.ndarray, k: int) -> float:
    """|top-k(a) & top-k(b)| / k: agreement of two rankings at depth k."""
    if k <= 0:
        raise ValueError(f"topk_overlap: k must be positive, got {k}")
    return len(set(np.asarray(ranked_a)[:k].tolist()) & set(np.asarray(ranked_b)[:k].tolist())) / k
