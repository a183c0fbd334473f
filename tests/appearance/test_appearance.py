"""Appearance images: shapes, the difference frame, the dynamic image (Bilen et al.
2016) against its definition, and the apex-centred MESTI weights."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from schemas.appearance_config import AppearanceConfig
from stag_features.errors import SampleError
from stag_features.extract.appearance import (
    appearance_images,
    dynamic_image_weights,
    mesti_scores,
    mesti_weights,
    normalised,
)

SIDE = 12


def _clip(T: int = 9, h: int = 40, w: int = 48, colour: bool = False, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    shape = (T, h, w, 3) if colour else (T, h, w)
    return rng.integers(0, 256, shape, dtype=np.uint8)


def _ramp(T: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """frames f_t = a + t b, t = 1..T, (T, SIDE, SIDE) float32, and a, b."""
    rng = np.random.default_rng(seed)
    a, b = rng.uniform(0.2, 0.6, (SIDE, SIDE)), rng.normal(0, 0.01, (SIDE, SIDE))
    t = np.arange(1, T + 1)[:, None, None]
    return (a + t * b).astype(np.float32), a, b


@pytest.mark.parametrize("colour, frames_colour, channels", [("grey", False, 1), ("grey", True, 1), ("colour", True, 3)])
def test_every_image_has_the_configured_shape(colour, frames_colour, channels):
    config = AppearanceConfig(size=16, colour=colour)
    images = appearance_images(_clip(colour=frames_colour), 1, 4, 7, config, sample="s1")
    for name in ("onset", "apex", "difference", "dynamic", "mesti"):
        image = getattr(images, name)
        assert image.shape == (channels, 16, 16) and image.dtype == np.float32, name


def test_difference_is_apex_minus_onset_of_the_resized_faces():
    frames = _clip()
    images = appearance_images(frames, 2, 5, None, AppearanceConfig(size=16), sample="s1")
    resized = lambda f: cv2.resize(f.astype(np.float32) / 255, (16, 16), interpolation=cv2.INTER_AREA)  # noqa: E731
    np.testing.assert_allclose(images.onset[0], resized(frames[2]), atol=1e-6)
    np.testing.assert_allclose(images.apex[0], resized(frames[5]), atol=1e-6)
    np.testing.assert_allclose(images.difference, images.apex - images.onset, atol=0)
    assert np.abs(images.difference).max() > 0.1


@pytest.mark.parametrize("T", [2, 3, 7, 30])
def test_dynamic_weights_are_approximate_rank_pooling_of_time_averages(T):
    """Bilen et al.: d = sum_t (2t - T - 1) V_t with V_t the mean of frames 1..t equals sum_t alpha_t f_t."""
    frames = np.random.default_rng(T).normal(size=(T, 5))
    averages = np.cumsum(frames, 0) / np.arange(1, T + 1)[:, None]  # (T, 5) V_t
    by_definition = (dynamic_image_weights(T, "identity")[:, None] * averages).sum(0)
    np.testing.assert_allclose(dynamic_image_weights(T, "time_average") @ frames, by_definition, atol=1e-9)
    for psi in ("time_average", "identity"):
        assert abs(dynamic_image_weights(T, psi).sum()) < 1e-9
        assert dynamic_image_weights(T, psi) @ np.arange(1, T + 1) > 0  # a ramp in time pools to its direction


@pytest.mark.parametrize("psi", ["time_average", "identity"])
def test_dynamic_image_of_a_linear_ramp_recovers_its_direction(psi):
    frames, a, b = _ramp(T=11)
    config = AppearanceConfig(size=SIDE, dynamic_image_psi=psi)
    dynamic = appearance_images(frames, 0, 5, 10, config).dynamic[0].astype(np.float64)
    cosine = (dynamic * b).sum() / (np.linalg.norm(dynamic) * np.linalg.norm(b))
    assert cosine > 1 - 1e-5
    # the static face a leaves no trace: the same ramp on another face gives the same image
    other = appearance_images(frames - a.astype(np.float32) + 0.5, 0, 5, 10, config).dynamic
    np.testing.assert_allclose(other[0], dynamic, atol=1e-5)


@pytest.mark.parametrize("profile", ["triangle", "gaussian"])
@pytest.mark.parametrize("mode", ["pairwise_rank", "centred_score"])
def test_mesti_weights_peak_at_the_apex_and_follow_it(profile, mode):
    T = 15
    weights = {apex: mesti_weights(mesti_scores(T, apex, profile, 0.25), mode) for apex in (2, 7, 12)}
    for apex, w in weights.items():
        assert int(np.argmax(w)) == apex and (w[apex] > np.delete(w, apex)).all()
        assert abs(w.sum()) < 1e-9
    assert not np.allclose(weights[2], weights[7]) and not np.allclose(weights[7], weights[12])
    if profile == "triangle":  # onset and offset are the least like the apex
        for w in weights.values():
            assert w[0] == w.min() and w[-1] == w.min()


def test_pairwise_rank_weights_of_time_are_bilens_identity_weights():
    for T in (1, 4, 9):
        np.testing.assert_array_equal(mesti_weights(np.arange(T, dtype=float), "pairwise_rank"),
                                      dynamic_image_weights(T, "identity"))


def test_mesti_image_moves_with_the_apex_and_ignores_a_constant_face():
    frames = _clip(T=12)
    config = AppearanceConfig(size=16)
    early, late = (appearance_images(frames, 1, apex, 10, config).mesti for apex in (3, 8))
    assert np.abs(early - late).max() > 0.05
    flat = np.full((12, 20, 20), 0.4, np.float32)
    images = appearance_images(flat, 1, 5, 10, config)
    for image in (images.mesti, images.dynamic, images.difference):
        np.testing.assert_allclose(image, 0, atol=1e-6)


def test_mesti_of_a_rise_and_fall_shows_the_movement_the_dynamic_image_misses():
    """A spot brightens from onset to apex and fades back by the offset: MESTI keeps it; the dynamic image
    with psi = identity (weights odd about the middle frame) cancels it."""
    T, apex = 13, 6
    frames = np.full((T, SIDE, SIDE), 0.5, np.float32)
    frames[:, 4:8, 4:8] += (0.3 * (1 - np.abs(np.arange(T) - apex) / apex))[:, None, None]
    images = appearance_images(frames, 0, apex, T - 1, AppearanceConfig(size=SIDE, dynamic_image_psi="identity"))
    spot = lambda x: x[0, 4:8, 4:8].mean()  # noqa: E731
    assert spot(images.mesti) > 0.2
    assert abs(spot(images.dynamic)) < 1e-6


def test_normalised_weights_carry_plus_and_minus_one():
    w = normalised(dynamic_image_weights(20))
    assert np.isclose(w[w > 0].sum(), 1) and np.isclose(w[w < 0].sum(), -1)
    np.testing.assert_array_equal(normalised(np.zeros(1)), np.zeros(1))


def test_bad_input_names_the_sample():
    with pytest.raises(SampleError, match="'clip7'.*onset 5, apex 3"):
        appearance_images(_clip(), 5, 3, 8, AppearanceConfig(), sample="clip7")
    with pytest.raises(SampleError, match="'clip7'.*frames are grey"):
        appearance_images(_clip(), 0, 3, 8, AppearanceConfig(colour="colour"), sample="clip7")
    with pytest.raises(SampleError, match="'clip7'.*offset < 9"):
        appearance_images(_clip(), 0, 3, 9, AppearanceConfig(), sample="clip7")
