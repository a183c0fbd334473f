"""Motion curve, ranking, apex estimate and K-frame selection on tiny synthetic data."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from schemas.motion_config import MotionConfig, SelectionConfig
from stag_features.extract.motion import (
    analyse_motion,
    estimate_apex,
    face_mask,
    rank_frames,
    smooth_curve,
    topk_overlap,
)
from stag_features.extract.selection import select_frames


def ring_landmarks(centre: float, radius: float) -> np.ndarray:
    angles = np.linspace(0, 2 * np.pi, 68, endpoint=False)
    return np.stack([centre + radius * np.cos(angles), centre + radius * np.sin(angles)], axis=1).astype(np.float32)


def bulging_clip(profile: np.ndarray, size: int = 96, seed: int = 0) -> np.ndarray:
    """Textured crops whose centre is pushed outward by ``profile[t]`` px (a Gaussian bump of displacement)."""
    rng = np.random.default_rng(seed)
    texture = cv2.GaussianBlur(rng.uniform(0, 255, (size, size)).astype(np.float32), (0, 0), 1.5)
    texture = cv2.normalize(texture, None, 0, 255, cv2.NORM_MINMAX)
    y, x = np.mgrid[0:size, 0:size].astype(np.float32)
    dy, dx = y - size / 2, x - size / 2
    bump = np.exp(-(dx**2 + dy**2) / (2 * (size / 6) ** 2))
    crops = []
    for amplitude in profile:
        # backward map: out(x) = texture(x - a * bump * radial unit) (outward motion)
        r = np.sqrt(dx**2 + dy**2) + 1e-6
        map_x = (x - amplitude * bump * dx / r).astype(np.float32)
        map_y = (y - amplitude * bump * dy / r).astype(np.float32)
        crops.append(cv2.remap(texture, map_x, map_y, cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT))
    return np.clip(np.round(crops), 0, 255).astype(np.uint8)


def test_face_mask_is_the_landmark_hull():
    mask = face_mask(ring_landmarks(50, 20), (100, 100), margin=0.0)
    assert mask[50, 50] and not mask[5, 5]
    assert abs(mask.sum() - np.pi * 20**2) / (np.pi * 20**2) < 0.1  # boundary pixels are filled


@pytest.mark.parametrize("method", ["dis", "farneback"])
def test_motion_curve_follows_displacement_profile(method):
    t = np.arange(21)
    profile = 2.0 * np.exp(-((t - 12) ** 2) / (2 * 3.0**2))  # peak 2 px at frame 12
    profile[0] = 0.0
    crops = bulging_clip(profile)
    result = analyse_motion(crops, ring_landmarks(48, 30), MotionConfig(method=method, size=96))
    assert result.curve[0] == 0.0
    assert result.curve.dtype == np.float32 and result.curve.shape == (21,)
    assert np.corrcoef(result.curve, profile)[0, 1] > 0.9
    assert abs(result.apex - 12) <= 1
    assert sorted(result.ranked.tolist()) == list(range(21))
    assert result.ranked[-1] == 0  # onset moves least


def test_rank_ties_keep_time_order_and_smoothing_preserves_length():
    curve = np.array([0.0, 1.0, 3.0, 3.0, 1.0])
    assert rank_frames(curve).tolist() == [2, 3, 1, 4, 0]
    assert len(smooth_curve(curve, 3)) == 5
    spike = np.array([0, 0.1, 2.5, 0.1, 0.1, 1.0, 1.2, 1.1, 0.2])
    assert estimate_apex(spike, 1) == 2
    assert estimate_apex(spike, 3) == 6  # one isolated noisy frame does not win once smoothed


def test_topk_overlap():
    assert topk_overlap(np.array([3, 1, 2, 0]), np.array([1, 3, 0, 2]), 2) == 1.0
    assert topk_overlap(np.array([3, 1, 2, 0]), np.array([0, 2, 1, 3]), 2) == 0.0


def _ranked_from_peak(n: int, peak: int) -> np.ndarray:
    curve = -np.abs(np.arange(n) - peak).astype(float)
    curve[0] = -1e9
    return rank_frames(curve)


def test_selection_includes_apex_respects_gap_in_time_order():
    ranked = _ranked_from_peak(40, 20)
    chosen = select_frames(ranked, apex=20, config=SelectionConfig(k=8, min_gap=3))
    assert len(chosen) == 8 and 20 in chosen
    assert np.all(np.diff(chosen) >= 3)
    assert chosen.tolist() == sorted(chosen.tolist())
    assert 0 not in chosen
    # without a gap the K frames crowd the apex
    crowded = select_frames(ranked, apex=20, config=SelectionConfig(k=8, min_gap=0))
    assert crowded.max() - crowded.min() == 7


def test_selection_keeps_annotated_apex_even_if_low_ranked():
    ranked = _ranked_from_peak(30, 25)
    chosen = select_frames(ranked, apex=5, config=SelectionConfig(k=4, min_gap=2))
    assert 5 in chosen and 25 in chosen


def test_selection_relaxes_gap_then_repeats_on_short_clips():
    ranked = _ranked_from_peak(10, 5)
    relaxed = select_frames(ranked, apex=5, config=SelectionConfig(k=8, min_gap=4))
    assert len(set(relaxed.tolist())) == 8  # 9 candidates: the gap is relaxed, frames stay distinct
    short = select_frames(np.array([1, 0]), apex=1, config=SelectionConfig(k=4))
    assert short.tolist() == [1, 1, 1, 1]


def test_selection_rejects_bad_input():
    with pytest.raises(ValueError, match="at least 2"):
        select_frames(np.array([0]), 0, SelectionConfig())
    with pytest.raises(ValueError, match="apex 7 is outside"):
        select_frames(np.arange(5), 7, SelectionConfig())
    with pytest.raises(ValueError, match="permutation"):
        select_frames(np.array([0, 0, 1]), 1, SelectionConfig())


def test_head_translation_is_removed_from_the_curve():
    profile = np.zeros(8)
    still = bulging_clip(profile, seed=3)
    shifted = np.stack([np.roll(still[0], shift=t // 2, axis=1) for t in range(8)])  # whole face slides
    landmarks = ring_landmarks(48, 30)
    removed = analyse_motion(shifted, landmarks, MotionConfig(size=96)).curve
    kept = analyse_motion(shifted, landmarks, MotionConfig(size=96, remove_head_translation=False)).curve
    assert kept[-1] > 2.5  # 3 px of slide
    assert removed.max() < 0.3


def test_frames_without_face_are_never_selected_nor_the_apex():
    curve = np.array([0.0, 1.0, 2.0, 9.0, 3.0, 2.5, 1.0, 0.5])  # frame 3: a hand in front of the face
    assert estimate_apex(curve, 1, excluded={3}) == 4
    chosen = select_frames(rank_frames(curve), apex=4, config=SelectionConfig(k=3, min_gap=1), excluded={3})
    assert 3 not in chosen and 4 in chosen
    with pytest.raises(ValueError, match="no frame left"):
        select_frames(np.array([1, 0]), 1, SelectionConfig(), excluded={1})
