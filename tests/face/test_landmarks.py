"""68-point landmarks against hand-placed ground truth, and the subject choice."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from schemas.face_config import FaceConfig
from stag_features.extract.face import FaceDetection, choose_subject, detect_subject
from stag_features.extract.frames import read_image
from stag_features.extract.rois import inter_ocular_distance

IMAGES = {"einstein": "einstein.jpg", "breakingbad": "breakingbad.jpg", "takeo": "takeo.ppm"}


def read_pts(path: Path) -> np.ndarray:
    """iBUG .pts (1-based x y) as 0-based (68, 2)."""
    body = path.read_text().split("{")[1].split("}")[0]
    return np.array(body.split(), dtype=np.float64).reshape(-1, 2) - 1.0


def normalised_mean_error(predicted: np.ndarray, truth: np.ndarray) -> float:
    """Mean point-to-point error over 68 points / outer-eye-corner distance of the truth."""
    return float(np.linalg.norm(predicted - truth, axis=1).mean() / inter_ocular_distance(truth))


@pytest.mark.slow
def test_nme_on_hand_labelled_images(shared_data, dlib_backend):
    config = FaceConfig()
    errors = {}
    for name, filename in IMAGES.items():
        image = read_image(shared_data / "landmarks" / filename)
        truth = read_pts(shared_data / "landmarks" / f"{name}.pts")
        subject = detect_subject(image, dlib_backend, config)  # no ground truth used to choose
        assert subject is not None, name
        errors[name] = normalised_mean_error(subject.landmarks, truth)
        print(f"NME {name}: {errors[name]:.4f} ({len(dlib_backend.detect(image))} detections)")
    print(f"NME mean: {np.mean(list(errors.values())):.4f}")
    assert all(e <= 0.10 for e in errors.values()), errors
    assert np.mean(list(errors.values())) <= 0.08


def _detection(x0, y0, side, score=1.0):
    return FaceDetection(box=(x0, y0, x0 + side, y0 + side), landmarks=np.zeros((68, 2), np.float32), score=score)


def test_subject_is_the_largest_face_without_a_previous_one():
    small_confident, large_weak = _detection(10, 10, 40, score=2.0), _detection(200, 50, 120, score=-0.2)
    assert choose_subject([small_confident, large_weak], (400, 600), None) is large_weak
    by_score = FaceConfig(subject_rule="highest_score")
    assert choose_subject([small_confident, large_weak], (400, 600), None, by_score) is small_confident
    assert choose_subject([], (400, 600), None) is None


def test_subject_follows_the_previous_face_and_is_absent_otherwise():
    previous = _detection(100, 100, 80)
    moved, other = _detection(106, 104, 80), _detection(300, 100, 160)
    assert choose_subject([other, moved], (480, 640), previous) is moved
    assert choose_subject([other], (480, 640), previous) is None


def test_false_face_in_an_old_photograph_is_not_chosen(shared_data, dlib_backend):
    image = read_image(shared_data / "landmarks" / "einstein.jpg")
    detections = dlib_backend.detect(image)
    truth = read_pts(shared_data / "landmarks" / "einstein.pts")
    subject = choose_subject(detections, image.shape, None)
    assert len(detections) >= 2  # the upsampled detector also fires on the photograph's texture
    centre = truth.mean(axis=0)
    assert subject.box[0] < centre[0] < subject.box[2] and subject.box[1] < centre[1] < subject.box[3]
