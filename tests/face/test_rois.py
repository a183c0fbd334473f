"""ROI boxes, AU map and adjacency: properties on real detected landmarks."""
from __future__ import annotations

import numpy as np
import pytest

from schemas.face_config import DEFAULT_ROIS, RoiConfig, RoiSpec
from stag_features.extract.rois import au_roi_indices, inter_ocular_distance, roi_boxes, roi_names, static_edges

REQUIRED_AUS = (1, 2, 4, 5, 6, 7, 9, 10, 12, 14, 15, 17, 20, 23, 24, 25, 26)


@pytest.fixture(scope="module")
def landmarks(synthetic_clip) -> np.ndarray:
    return synthetic_clip.landmarks_onset


def test_default_set_covers_required_aus_and_names_resolve():
    config = RoiConfig()
    assert 12 <= len(config.rois) <= 18
    assert set(REQUIRED_AUS) <= set(config.au_rois)
    indices = au_roi_indices(config)
    assert all(indices[au] for au in REQUIRED_AUS)
    edges = static_edges(config)
    assert edges.dtype == np.int32 and edges.shape[1] == 2
    assert np.all(edges[:, 0] < edges[:, 1])
    assert [tuple(e) for e in edges] == sorted({tuple(e) for e in edges})
    # every ROI is connected to at least one other: the graph has no isolated node
    assert set(edges.ravel()) == set(range(len(config.rois)))


def test_each_box_contains_its_landmarks(landmarks):
    config = RoiConfig()
    size = 256
    boxes = roi_boxes(landmarks, config, size)
    iod = inter_ocular_distance(landmarks)
    assert boxes.shape == (len(config.rois), 4) and boxes.dtype == np.float32
    for box, roi in zip(boxes, config.rois):
        points = landmarks[list(roi.landmarks)]
        assert np.all(points[:, 0] >= box[0]) and np.all(points[:, 0] <= box[2]), roi.name
        assert np.all(points[:, 1] >= box[1]) and np.all(points[:, 1] <= box[3]), roi.name
        # the margin is the configured fraction of the inter-ocular distance (inside the image)
        assert box[0] == pytest.approx(max(0, points[:, 0].min() - roi.margin * iod), abs=1e-3)
        assert box[3] == pytest.approx(min(size, points[:, 1].max() + roi.margin * iod), abs=1e-3)


def test_boxes_are_clipped_to_the_image(landmarks):
    boxes = roi_boxes(landmarks * 0.5, RoiConfig(), (60, 80))
    assert boxes[:, [0, 2]].max() <= 80 and boxes[:, [1, 3]].max() <= 60 and boxes.min() >= 0


def test_margins_scale_with_the_face(landmarks):
    config = RoiConfig()
    centre = landmarks.mean(axis=0)
    doubled = (landmarks - centre) * 2 + centre
    small, big = roi_boxes(landmarks, config), roi_boxes(doubled, config)
    width = lambda b: b[:, 2] - b[:, 0]  # noqa: E731
    np.testing.assert_allclose(width(big), 2 * width(small), rtol=1e-4)


def test_reordering_rois_changes_only_the_order(landmarks):
    config = RoiConfig()
    order = np.random.default_rng(3).permutation(len(config.rois))
    shuffled = config.model_copy(update={"rois": tuple(config.rois[i] for i in order)})
    shuffled = RoiConfig.model_validate(shuffled.model_dump())
    assert roi_names(shuffled) == [roi_names(config)[i] for i in order]
    np.testing.assert_array_equal(roi_boxes(landmarks, shuffled, 256), roi_boxes(landmarks, config, 256)[order])
    names, names_shuffled = roi_names(config), roi_names(shuffled)
    for au, idx in au_roi_indices(config).items():
        assert {names[i] for i in idx} == {names_shuffled[i] for i in au_roi_indices(shuffled)[au]}
    as_names = lambda edges, n: {frozenset((n[a], n[b])) for a, b in edges}  # noqa: E731
    assert as_names(static_edges(config), names) == as_names(static_edges(shuffled), names_shuffled)


def test_config_rejects_unknown_names_and_bad_landmarks():
    with pytest.raises(ValueError, match="unknown ROIs"):
        RoiConfig(au_rois={12: ("mouth",)})
    with pytest.raises(ValueError, match="0..67"):
        RoiConfig(rois=DEFAULT_ROIS + (RoiSpec(name="extra", landmarks=(70,)),))
    with pytest.raises(ValueError, match="more than once"):
        RoiConfig(rois=DEFAULT_ROIS + (DEFAULT_ROIS[0],))
    with pytest.raises(ValueError, match="landmarks must be"):
        roi_boxes(np.zeros((5, 2)), RoiConfig())
