"""Store -> tensors: committed samples only, both source paths agree, flip
augmentation respects flow semantics, normalisation from the training fold."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from schemas.model_config import DataConfig
from stag_model.augment import flip_horizontally
from stag_model.data import (
    InMemorySource,
    Normaliser,
    StreamingSource,
    edge_mirror_positions,
    grid_graph,
    grid_roi_features,
    mirror_positions,
    open_samples,
)

CPU = torch.device("cpu")


def test_reads_committed_labelled_samples_only(synthetic_store):
    samples = open_samples([synthetic_store], DataConfig(scheme="demo"))
    assert len(samples) == 36  # 38 slots, 2 never committed
    assert not any(sid.startswith("ghost/") for sid in samples.sample_ids)
    assert samples.class_names == ("brows_up", "smile", "jaw_drop")
    assert samples.graph.roi_names == ("brow_left", "brow_right", "mouth_left", "mouth_right")
    assert samples.graph.roi_mirror.tolist() == [1, 0, 3, 2]
    with pytest.raises(KeyError, match="no class scheme 'casme2-5'"):
        open_samples([synthetic_store], DataConfig(scheme="casme2-5"))
    with pytest.raises(FileNotFoundError, match="no feature store"):
        open_samples([synthetic_store.parent / "missing.zarr"], DataConfig(scheme="demo"))


def test_streaming_and_in_memory_give_the_same_batches(synthetic_store):
    config = DataConfig(scheme="demo", num_workers=1)
    samples = open_samples([synthetic_store], config)
    positions = np.array([5, 0, 33, 12, 7])
    memory = list(InMemorySource(samples, config, CPU).batches(positions, 2))
    stream = list(StreamingSource(samples, config, CPU).batches(positions, 2))
    assert len(memory) == len(stream) == 3
    for (p1, b1), (p2, b2) in zip(memory, stream):
        assert p1.tolist() == p2.tolist()
        for name in ("flow", "strain", "roi_patches", "roi_stats", "au_activation", "edge_weight"):
            torch.testing.assert_close(getattr(b1, name), getattr(b2, name))


def _quadrants(flow: torch.Tensor, patch: int) -> torch.Tensor:
    """(B, K, 2, H, W) -> (B, K, 4, 2, P, P) quadrant patches, as the synthetic store makes them."""
    h = flow.shape[-1] // 2
    quads = [flow[..., :h, :h], flow[..., :h, h:], flow[..., h:, :h], flow[..., h:, h:]]
    return torch.stack([torch.nn.functional.adaptive_avg_pool2d(q.flatten(0, 1), patch).unflatten(0, q.shape[:2])
                        for q in quads], 2)


def test_flip_mirrors_field_negates_u_and_swaps_sides(synthetic_store):
    config = DataConfig(scheme="demo")
    samples = open_samples([synthetic_store], config)
    _, b = next(InMemorySource(samples, config, CPU).batches(np.arange(6), 6))
    which = torch.tensor([True, False, True, True, False, True])
    f = flip_horizontally(b, which, samples.graph)
    # the field: mirrored along x, u negated, v kept; unflipped samples untouched
    torch.testing.assert_close(f.flow[0, :, 0], -b.flow[0, :, 0].flip(-1))
    torch.testing.assert_close(f.flow[0, :, 1], b.flow[0, :, 1].flip(-1))
    torch.testing.assert_close(f.flow[1], b.flow[1])
    # ROI patches of the flipped field are the flipped ROI patches (left and right swapped)
    patch = b.roi_patches.shape[-1]
    torch.testing.assert_close(_quadrants(f.flow, patch)[which], f.roi_patches[which], atol=2e-3, rtol=1e-3)
    # stats: mean u and cos(direction) change sign, ROIs swap
    torch.testing.assert_close(f.roi_stats[0, :, 0, 0], -b.roi_stats[0, :, 1, 0])
    torch.testing.assert_close(f.roi_stats[0, :, 0, 1], b.roi_stats[0, :, 1, 1])
    # edges follow their ROIs: (mouth_left, brow_left)=edge 2 <-> (mouth_right, brow_right)=edge 3
    torch.testing.assert_close(f.edge_weight[0, :, 2], b.edge_weight[0, :, 3])
    # flipping twice is the identity
    twice = flip_horizontally(f, which, samples.graph)
    for name in ("flow", "strain", "roi_patches", "roi_stats", "au_activation", "edge_weight"):
        torch.testing.assert_close(getattr(twice, name), getattr(b, name))


def test_left_right_pairings_from_names():
    assert mirror_positions(("eye_left", "nose", "eye_right")).tolist() == [2, 1, 0]
    assert mirror_positions(("AU1", "L12", "R12", "AU14")).tolist() == [0, 2, 1, 3]
    assert mirror_positions(("AUL12", "AUR12")).tolist() == [1, 0]
    with pytest.raises(ValueError, match="not left/right symmetric"):
        edge_mirror_positions(np.array([[0, 1]]), mirror_positions(("eye_left", "nose", "eye_right")), "s.zarr")


def test_grid_rois_for_stores_without_rois():
    flow = np.random.default_rng(0).normal(size=(2, 1, 2, 28, 28)).astype(np.float32)
    patches, stats = grid_roi_features(flow, 4)
    assert patches.shape == (2, 1, 16, 2, 7, 7)
    np.testing.assert_allclose(patches[0, 0, 5], flow[0, 0, :, 7:14, 7:14])  # row 1, col 1
    np.testing.assert_allclose(stats[..., 0], patches[:, :, :, 0].mean((-2, -1)), rtol=1e-5)
    names, edges, mirror = grid_graph(4)
    assert len(names) == 16 and len(edges) == 24 and mirror[1] == 2
    edge_mirror_positions(edges, mirror, "grid")  # symmetric: does not raise


def test_normaliser_uses_the_given_positions_only(synthetic_store):
    config = DataConfig(scheme="demo")
    samples = open_samples([synthetic_store], config)
    source = InMemorySource(samples, config, CPU)
    train = np.arange(0, 24)
    norm = Normaliser.fit(source, train, 7, config.min_std)
    flow = source.arrays["flow"][torch.as_tensor(train)].double()
    torch.testing.assert_close(norm.mean["flow"], flow.mean((0, 1, 3, 4)).float())
    torch.testing.assert_close(norm.std["flow"], flow.std((0, 1, 3, 4), unbiased=False).float(), rtol=1e-4, atol=1e-6)
    _, b = next(source.batches(train, 24))
    z = norm(b).flow
    torch.testing.assert_close(z.mean((0, 1, 3, 4)), torch.zeros(2), atol=1e-5, rtol=0)
    other = Normaliser.fit(source, np.arange(24, 36), 7, config.min_std)
    assert not torch.allclose(other.mean["flow"], norm.mean["flow"])


def test_several_stores_prefix_subjects(synthetic_store, second_store):
    samples = open_samples([synthetic_store, second_store], DataConfig(scheme="demo"))
    assert len(samples) == 36 + 18
    # both stores call their dataset "synthetic": the store name keeps them apart
    assert set(samples.datasets) == {"synthetic:synthetic", "synthetic:second"}
    assert samples.subjects[0] == "synthetic:synthetic/s00"
    assert not set(samples.subjects[:36]) & set(samples.subjects[36:])
