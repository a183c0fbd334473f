"""Alignment with one transform, stability on real video, missing faces."""
from __future__ import annotations

import numpy as np
import pytest

from schemas.pipeline_config import PipelineConfig
from schemas.sample_record import FrameSource
from stag_features.errors import NoFaceError
from stag_features.extract.align import align_clip, apply_transform, landmarks_on_crop, similarity_transform
from stag_features.extract.frames import read_frames


def test_similarity_transform_recovers_a_known_one():
    rng = np.random.default_rng(0)
    points = rng.uniform(0, 100, size=(5, 2))
    angle, scale, shift = 0.3, 1.7, np.array([12.0, -4.0])
    rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    moved = points @ (scale * rotation).T + shift
    transform = similarity_transform(points, moved)
    np.testing.assert_allclose(transform[:, :2], scale * rotation, atol=1e-9)
    np.testing.assert_allclose(apply_transform(points, transform), moved, atol=1e-4)


def rigid_residual(landmarks: np.ndarray) -> np.ndarray:
    """(T, 68) distance of each frame's landmarks to the mean shape after removing that
    frame's own similarity (rotation, scale, translation): landmark noise, not head motion."""
    mean = landmarks.mean(axis=0)
    for _ in range(3):
        fitted = np.stack([apply_transform(lm, similarity_transform(lm, mean)) for lm in landmarks])
        mean = fitted.mean(axis=0)
    return np.linalg.norm(fitted - mean, axis=2)


@pytest.mark.slow
def test_single_face_video_is_stable_after_alignment(shared_data, dlib_backend):
    config = PipelineConfig()
    batch = read_frames(FrameSource(kind="video", path=shared_data / "videos" / "single_face.mp4"), 0, 11)
    aligned = align_clip(batch.frames, config, dlib_backend, onset=0, sample="single_face")
    size = config.align.crop_size
    assert aligned.crops.shape == (11, size, size) and aligned.crops.dtype == np.uint8
    assert aligned.face_found.all() and aligned.missing_face == []
    assert aligned.head_motion[0] == 0
    inside = (aligned.landmarks_onset >= 0) & (aligned.landmarks_onset < size)
    assert inside.all()
    landmarks = np.stack([landmarks_on_crop(crop, dlib_backend) for crop in aligned.crops])
    jitter = np.sqrt((rigid_residual(landmarks) ** 2).mean(axis=0)).mean()
    # the man moves his head by several px in these frames; the measured head motion must agree
    # with the landmarks' centroid shift
    centroid_shift = np.linalg.norm(landmarks.mean(axis=1) - landmarks[0].mean(axis=0), axis=1)
    print(f"landmark jitter (rms, after each frame's similarity) {jitter:.3f} px at {size}; head motion "
          f"{np.round(aligned.head_motion, 2)}; landmark centroid shift {np.round(centroid_shift, 2)}")
    assert jitter < 1.0
    assert np.abs(aligned.head_motion - centroid_shift).max() < 1.0  # landmark centroids are noisier than ECC
    # the onset landmarks (mapped from the full frame) agree with landmarks found on the crop
    assert np.linalg.norm(landmarks[0] - aligned.landmarks_onset, axis=1).mean() < 1.0


def test_video_without_a_face_names_the_file(shared_data, dlib_backend):
    path = shared_data / "videos" / "no_face.mp4"
    batch = read_frames(FrameSource(kind="video", path=path), 0, 5, sample=str(path))
    with pytest.raises(NoFaceError, match=r"no_face\.mp4.*no face on the onset frame") as caught:
        align_clip(batch.frames, PipelineConfig(), dlib_backend, sample=str(path), positions=batch.positions)
    assert caught.value.frames == [0]


# The face is last seen at position 71 of face_noface.mov and first seen at position 96 of
# noface_face.mov (full-frame detection on every frame, sequential decoding).
@pytest.mark.slow
@pytest.mark.parametrize(
    ("name", "start", "stop", "onset", "expected_missing"),
    [("face_noface.mov", 64, 78, 0, list(range(72, 78))), ("noface_face.mov", 90, 104, 10, list(range(90, 96)))],
)
def test_frames_without_the_face_are_reported(shared_data, dlib_backend, name, start, stop, onset, expected_missing):
    path = shared_data / "videos" / name
    batch = read_frames(FrameSource(kind="video", path=path), start, stop)
    skip = PipelineConfig().with_overrides(face={"missing_face": "skip"})
    aligned = align_clip(batch.frames, skip, dlib_backend, onset=onset, sample=name, positions=batch.positions)
    missing = [int(batch.positions[t]) for t in aligned.missing_face]
    print(f"{name}: frames without a face {missing}")
    assert missing == expected_missing
    assert aligned.crops.shape[0] == len(batch.frames) and aligned.face_found.sum() == len(batch.frames) - len(missing)
    with pytest.raises(NoFaceError, match=name) as caught:
        align_clip(batch.frames, PipelineConfig(), dlib_backend, onset=onset, sample=name, positions=batch.positions)
    assert caught.value.frames == missing


def test_head_motion_matches_the_synthetic_truth(dlib_backend, small_synthetic_config):
    """The generator's known head translation, in crop px, is what align_clip measures."""
    from schemas.synthetic_config import SyntheticConfig
    from stag_features.adapters.synthetic_clips import make_dataset

    config = SyntheticConfig.model_validate({**small_synthetic_config.model_dump(), "head_motion_px": 2.0})
    clip = make_dataset(1, 1, seed=11, config=config, emotions=("happiness",))[0]
    aligned = align_clip(clip.frames, PipelineConfig(), dlib_backend, onset=clip.onset, sample=clip.clip)
    assert aligned.face_found.all()
    scale = np.sqrt(abs(np.linalg.det(aligned.transform[:, :2])))
    truth = np.linalg.norm(clip.head_shift, axis=1) * scale
    error = np.abs(aligned.head_motion - truth)
    print(f"head motion error vs synthetic truth: max {error.max():.3f} px (truth up to {truth.max():.2f} px)")
    assert aligned.head_motion[clip.onset] == 0 and truth.max() > 0.5
    assert error.max() < 0.2
