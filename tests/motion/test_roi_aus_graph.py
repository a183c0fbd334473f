"""ROI features, the flow-derived AU cue, the ground-truth AU vector and the
AU-guided graph weights, on small hand-built flows."""
from __future__ import annotations

import numpy as np
import pytest

from schemas.motion_config import AUConfig, GraphConfig, RoiFeatureConfig
from schemas.sample_record import AUAnnotation, AUCode, AUTerm, SampleRecord
from stag_features.extract.aus import au_names, au_truth_vector, direction_vector, flow_au_cue
from stag_features.extract.graph import au_roi_sets, dynamic_edge_weights
from stag_features.extract.roi_features import ROI_STAT_NAMES, roi_features

SIZE = 100
# A toy face on a 100 px crop: midline x = 50, mouth corners at y ~ 75.
ROI_NAMES = ["inner_brow_left", "inner_brow_right", "glabella", "mouth_corner_left", "mouth_corner_right", "chin"]
BOXES = np.array(
    [[30, 20, 45, 30], [55, 20, 70, 30], [45, 22, 55, 32], [25, 68, 40, 80], [60, 68, 75, 80], [40, 85, 60, 95]],
    dtype=np.float32,
)


def toy_landmarks() -> np.ndarray:
    """68 points: a hull around the face, and midline points (27-30, 33, 51, 57, 8) at x = 50."""
    rng = np.random.default_rng(0)
    points = np.column_stack([rng.uniform(20, 80, 68), rng.uniform(15, 97, 68)])
    points[:4] = [[15, 10], [85, 10], [85, 98], [15, 98]]
    points[[27, 28, 29, 30, 33, 51, 57, 8], 0] = 50.0
    return points.astype(np.float32)


def flow_with(regions: dict[int, tuple[float, float]]) -> np.ndarray:
    """(1, 2, H, W) flow: zero, except constant vectors inside some ROI boxes."""
    flow = np.zeros((1, 2, SIZE, SIZE), np.float32)
    for r, (u, v) in regions.items():
        x0, y0, x1, y1 = BOXES[r].astype(int)
        flow[0, 0, y0:y1, x0:x1] = u
        flow[0, 1, y0:y1, x0:x1] = v
    return flow


def test_roi_features_of_constant_flow_and_roi_order():
    flow = flow_with({3: (-1.0, -0.5), 4: (1.0, -0.5)})
    patches, stats = roi_features(flow, BOXES, RoiFeatureConfig(patch_size=8))
    assert patches.shape == (1, 6, 2, 8, 8) and stats.shape == (1, 6, len(ROI_STAT_NAMES))
    np.testing.assert_allclose(patches[0, 4, 0], 1.0, atol=1e-6)
    np.testing.assert_allclose(stats[0, 4], [1.0, -0.5, np.hypot(1, 0.5), np.arctan2(-0.5, 1.0)], atol=0.2)
    assert stats[0, 4, 3] < 0  # upward motion is negative y
    assert stats[0, 0, 2] == 0.0 and stats[0, 0, 3] == 0.0
    order = [5, 2, 0, 4, 1, 3]
    patches2, stats2 = roi_features(flow, BOXES[order], RoiFeatureConfig(patch_size=8))
    np.testing.assert_array_equal(patches2, patches[:, order])
    np.testing.assert_array_equal(stats2, stats[:, order])


def test_roi_box_at_border_is_clipped_and_empty_box_named():
    flow = np.ones((1, 2, 10, 10), np.float32)
    patches, stats = roi_features(flow, np.array([[8, 8, 14, 14]], np.float32), RoiFeatureConfig(patch_size=4))
    assert np.all(patches == 1.0) and stats[0, 0, 0] == 1.0
    with pytest.raises(ValueError, match="empty or inverted"):
        roi_features(flow, np.array([[5, 5, 5, 9]], np.float32), RoiFeatureConfig())


def test_direction_modes():
    from schemas.motion_config import AUDirection

    away = AUDirection(roi="x", mode="away_midline", dy=-1)
    np.testing.assert_allclose(direction_vector(away, 30, 50), np.array([-1, -1]) / np.sqrt(2))
    np.testing.assert_allclose(direction_vector(away, 70, 50), np.array([1, -1]) / np.sqrt(2))
    toward = AUDirection(roi="x", mode="toward_midline")
    np.testing.assert_allclose(direction_vector(toward, 30, 50), [1, 0])


def test_smile_flow_activates_au12_most():
    config = AUConfig()
    flow = flow_with({3: (-0.8, -0.6), 4: (0.8, -0.6)})  # mouth corners outward and up
    cues, warnings = flow_au_cue(flow, BOXES, ROI_NAMES, toy_landmarks(), iod=40.0, config=config)
    names = au_names(config)
    assert cues.shape == (1, len(config.aus)) and cues.dtype == np.float32
    assert names[int(np.argmax(cues[0]))] == "AU12"
    assert cues[0, names.index("AU4")] == 0.0
    assert cues[0, names.index("AU15")] == 0.0  # corners went up, not down
    assert any("AU5" in w for w in warnings)  # eye ROIs are absent from this toy set


def test_brow_lowerer_flow_activates_au4_not_au1():
    config = AUConfig()
    flow = flow_with({0: (0.5, 0.5), 1: (-0.5, 0.5), 2: (0.0, 0.6)})  # brows down and together
    cues, _ = flow_au_cue(flow, BOXES, ROI_NAMES, toy_landmarks(), iod=40.0, config=config)
    names = au_names(config)
    assert cues[0, names.index("AU4")] > 0.5
    assert cues[0, names.index("AU1")] == 0.0


def test_cue_scales_inversely_with_iod_and_ignores_head_translation():
    config = AUConfig()
    flow = flow_with({3: (-0.8, -0.6), 4: (0.8, -0.6)})
    au12 = au_names(config).index("AU12")
    small, _ = flow_au_cue(flow, BOXES, ROI_NAMES, toy_landmarks(), iod=20.0, config=config)
    large, _ = flow_au_cue(flow, BOXES, ROI_NAMES, toy_landmarks(), iod=40.0, config=config)
    assert small[0, au12] == pytest.approx(2 * large[0, au12], rel=1e-5)
    shifted = flow + np.array([0.7, -0.4], np.float32)[None, :, None, None]  # the whole head moved
    moved, _ = flow_au_cue(shifted, BOXES, ROI_NAMES, toy_landmarks(), iod=40.0, config=config)
    np.testing.assert_allclose(moved, large, atol=1e-5)


def test_ground_truth_au_vector():
    config = AUConfig(aus=(1, 4, 12))
    coded = AUAnnotation(raw="R12+4", terms=(AUTerm(alternatives=(AUCode(number=12, side="R"),)),
                                             AUTerm(alternatives=(AUCode(number=4),))))
    record = SampleRecord(dataset="d", subject="s", clip="c", aus=coded)
    assert au_truth_vector(record, config).tolist() == [0, 1, 1]
    unknown = SampleRecord(dataset="d", subject="s", clip="c", aus=AUAnnotation(raw="?", unknown=True))
    vector = au_truth_vector(unknown, config)
    assert vector.dtype == np.int8 and vector.tolist() == [-1, -1, -1]


EDGES = np.array([[0, 2], [1, 2], [3, 5], [4, 5], [0, 1]], np.int32)


def test_edge_weights_rule():
    aus = AUConfig()
    config = GraphConfig()
    acts = au_roi_sets(ROI_NAMES, aus)
    zero = np.zeros((1, len(aus.aus)), np.float32)
    np.testing.assert_array_equal(dynamic_edge_weights(zero, aus.aus, EDGES, acts, config), config.base)
    brow = zero.copy()
    brow[0, aus.aus.index(4)] = 1.5  # AU4 acts on both brows and the glabella
    w = dynamic_edge_weights(brow, aus.aus, EDGES, acts, config)[0]
    assert w[0] > config.base and w[1] > config.base and w[4] > config.base
    assert w[2] == config.base and w[3] == config.base  # mouth/chin edges untouched by AU4
    assert np.all(w < config.base + config.gain)
    stronger = brow.copy()
    stronger[0, aus.aus.index(4)] = 3.0
    assert np.all(dynamic_edge_weights(stronger, aus.aus, EDGES, acts, config)[0] >= w)


def test_cooccurrence_links_rois_of_different_aus():
    aus = AUConfig(aus=(12, 17))
    config = GraphConfig(cooccurrence=((12, 17),))
    acts = au_roi_sets(ROI_NAMES, aus)  # AU12 acts on the mouth corners, AU17 on the chin
    both = np.array([[1.0, 1.0]], np.float32)
    only12 = np.array([[1.0, 0.0]], np.float32)
    w_both = dynamic_edge_weights(both, aus.aus, EDGES, acts, config)[0]
    w_one = dynamic_edge_weights(only12, aus.aus, EDGES, acts, config)[0]
    assert w_both[2] > config.base and w_one[2] == config.base
    no_prior = dynamic_edge_weights(both, aus.aus, EDGES, acts, GraphConfig(cooccurrence=()))[0]
    assert no_prior[2] == config.base


def test_edge_weights_follow_roi_reordering():
    aus = AUConfig()
    rng = np.random.default_rng(1)
    activations = rng.uniform(0, 2, (3, len(aus.aus))).astype(np.float32)
    w = dynamic_edge_weights(activations, aus.aus, EDGES, au_roi_sets(ROI_NAMES, aus), GraphConfig())
    order = [5, 2, 0, 4, 1, 3]
    new_index = {old: new for new, old in enumerate(order)}
    names = [ROI_NAMES[i] for i in order]
    edges = np.vectorize(new_index.get)(EDGES)
    w2 = dynamic_edge_weights(activations, aus.aus, edges, au_roi_sets(names, aus), GraphConfig())
    np.testing.assert_allclose(w2, w)
