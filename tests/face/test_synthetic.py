"""Synthetic clips: detectable in every frame, truthful displacement, deterministic."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from schemas.face_config import FaceConfig
from schemas.synthetic_config import SyntheticConfig
from stag_features.adapters.synthetic_clips import (
    EMOTION_AUS,
    base_face,
    expression_field,
    intensity_profile,
    make_clip,
    make_dataset,
    make_identity,
    render_frame,
)
from stag_features.extract.face import detect_subject


def test_emotions_are_au_combinations_with_motion_models():
    config = SyntheticConfig()
    assert EMOTION_AUS["happiness"] == (6, 12)
    assert all(set(aus) <= set(config.au_movers) for aus in EMOTION_AUS.values())
    with pytest.raises(ValueError, match="no au_movers"):
        SyntheticConfig(emotions={"odd": (99,)})


def test_intensity_profile_rises_to_the_apex_and_returns():
    profile = intensity_profile(20, onset=2, apex=8, offset=14)
    assert profile[:3].max() == 0 and profile[14:].max() == 0 and profile[8] == 1
    assert np.all(np.diff(profile[2:9]) > 0) and np.all(np.diff(profile[8:15]) < 0)


def test_clips_carry_their_truth(synthetic_dataset, small_synthetic_config):
    config = small_synthetic_config
    assert len(synthetic_dataset) == 2 * 3
    assert {c.subject for c in synthetic_dataset} == {"s01", "s02"}
    for clip in synthetic_dataset:
        assert clip.frames.shape == (config.n_frames, config.size, config.size, 3) and clip.frames.dtype == np.uint8
        assert clip.aus == EMOTION_AUS[clip.emotion]
        assert clip.onset < clip.apex < clip.offset < config.n_frames
        field = clip.displacement
        assert field.shape == (config.n_frames, 2, config.size, config.size) and field.dtype == np.float32
        np.testing.assert_array_equal(field[clip.onset], 0)
        peak = np.linalg.norm(field[clip.apex] - clip.head_shift[clip.apex][:, None, None], axis=0).max()
        assert config.amplitude_px[0] - 1e-3 <= peak <= config.amplitude_px[1] + 1e-3
        assert np.abs(clip.head_shift).max() <= config.head_motion_px + 1e-6


def test_face_and_landmarks_found_in_every_frame(synthetic_dataset, dlib_backend):
    config = FaceConfig()
    for clip in synthetic_dataset:
        for t, frame in enumerate(clip.frames):
            subject = detect_subject(frame, dlib_backend, config)
            assert subject is not None, f"{clip.clip} frame {t}"
            assert np.linalg.norm(subject.landmarks - clip.landmarks_onset, axis=1).mean() < 5.0, f"{clip.clip} frame {t}"


def test_displacement_is_the_true_motion(dlib_backend):
    """Sampling the apex frame at p + d(p) gives back the onset (noise and light off)."""
    config = SyntheticConfig(n_frames=12, rise_frames=(4, 4), fall_frames=(4, 4), noise_sigma=0, lighting_drift=0, lighting_tilt=0)
    rng = np.random.default_rng(1)
    identity = make_identity("x", rng, config, base_face(None, config, dlib_backend), dlib_backend)
    clip = make_clip(identity, "surprise", "x_surprise_1", rng, config)
    onset = clip.frames[clip.onset].astype(np.float32)
    apex = clip.frames[clip.apex].astype(np.float32)
    d = clip.displacement[clip.apex]
    y, x = np.mgrid[0 : config.size, 0 : config.size].astype(np.float32)
    back = cv2.remap(apex, x + d[0], y + d[1], cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT)
    moving = np.linalg.norm(d, axis=0) > 0.5
    inner = np.zeros_like(moving)
    inner[8:-8, 8:-8] = True
    region = moving & inner
    error_true = np.abs(back - onset)[region].mean()
    error_none = np.abs(apex - onset)[region].mean()
    print(f"onset vs apex warped back with the true field: {error_true:.2f} grey levels; without: {error_none:.2f}")
    assert region.sum() > 500
    assert error_true < 0.4 * error_none


def test_render_inverts_the_forward_field_exactly():
    size = 64
    y, x = np.mgrid[0:size, 0:size].astype(np.float32)
    image = (127 + 60 * np.sin(x / 5) * np.cos(y / 7)).astype(np.float32)
    bump = np.exp(-((x - 32) ** 2 + (y - 32) ** 2) / (2 * 8.0**2))
    forward = np.stack([1.5 * bump, -1.0 * bump]).astype(np.float32)
    moved = render_frame(image, forward, iterations=6)
    # the point p of the original must land at p + forward(p)
    landed = cv2.remap(moved, x + forward[0], y + forward[1], cv2.INTER_CUBIC)
    assert np.abs(landed - image)[8:-8, 8:-8].max() < 1.0


def test_dataset_is_deterministic_given_the_seed(small_synthetic_config):
    config = small_synthetic_config.model_copy(update={"n_frames": 12, "rise_frames": (3, 3), "fall_frames": (3, 3)})
    config = SyntheticConfig.model_validate(config.model_dump())
    first = make_dataset(1, 1, seed=5, config=config, emotions=("sadness",))
    again = make_dataset(1, 1, seed=5, config=config, emotions=("sadness",))
    other = make_dataset(1, 1, seed=6, config=config, emotions=("sadness",))
    np.testing.assert_array_equal(first[0].frames, again[0].frames)
    np.testing.assert_array_equal(first[0].displacement, again[0].displacement)
    assert not np.array_equal(first[0].frames, other[0].frames)


def test_expression_field_is_localised_at_the_au_landmarks(synthetic_clip, small_synthetic_config):
    landmarks = synthetic_clip.landmarks_onset
    field = expression_field(landmarks, (12,), np.ones(1), 2.0, small_synthetic_config)
    magnitude = np.linalg.norm(field, axis=0)
    for corner in (48, 54):
        x, y = np.round(landmarks[corner]).astype(int)
        assert magnitude[y, x] > 1.5  # lip corners move
    x, y = np.round(landmarks[19]).astype(int)
    assert magnitude[y, x] < 0.05  # the brows do not
    assert field[1][tuple(np.round(landmarks[48, ::-1]).astype(int))] < 0  # corners go up (y down)


def test_any_face_image_can_be_the_source(shared_data, dlib_backend, small_synthetic_config):
    from stag_features.extract.frames import read_image

    takeo = read_image(shared_data / "landmarks" / "takeo.ppm")
    clip = make_dataset(1, 1, seed=3, config=small_synthetic_config, emotions=("anger",), face_image=takeo)[0]
    assert clip.aus == (4, 5, 7, 23)
    found = [detect_subject(frame, dlib_backend, FaceConfig()) is not None for frame in clip.frames]
    assert all(found)
