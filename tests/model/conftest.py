"""Fixtures for the trainer's tests: tiny deterministic batches, and small
feature stores written through the real store writer (stag_features.store.writer)
whose classes are motion patterns a model can learn."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from schemas.pipeline_config import PipelineConfig
from schemas.sample_features import SampleFeatures
from schemas.sample_record import SampleRecord
from schemas.store_spec import SOURCE_DATASET, StoreLayout
from stag_features.store.identity import StoreIdentity
from stag_features.store.slots import write_sample
from stag_features.store.writer import allocate_slots, ensure_store
from stag_model.model import StagBatch

torch.set_num_threads(1)  # the test machine is shared; one thread per test process is fastest overall

ROIS = ("brow_left", "brow_right", "mouth_left", "mouth_right")
EDGES = ((0, 1), (2, 3), (0, 2), (1, 3))
AUS = ("AU1", "AU12")
CLASSES = ("brows_up", "smile", "jaw_drop")
SIDE, PATCH = 24, 6


def tiny_batch(batch: int = 3, frames: int = 4, rois: int = 6, aus: int = 5, seed: int = 0) -> StagBatch:
    """Random inputs on a ring graph with chords (no self-loops)."""
    g = torch.Generator().manual_seed(seed)
    edges = [(i, (i + 1) % rois) for i in range(rois)] + [(i, i + rois // 2) for i in range(rois // 2)]
    r = lambda *s: torch.randn(*s, generator=g)  # noqa: E731
    return StagBatch(
        flow=r(batch, frames, 2, 20, 20), strain=r(batch, frames, 20, 20).abs(),
        frame_mask=torch.ones(batch, frames, dtype=torch.bool), roi_patches=r(batch, frames, rois, 2, 6, 6),
        roi_stats=r(batch, frames, rois, 5), au_activation=r(batch, frames, aus).abs(),
        edge_weight=torch.rand(batch, frames, len(edges), generator=g), edge_index=torch.tensor(edges),
        roi_ids=torch.arange(rois),
    )


def _flow_for(label: int, rng: np.random.Generator, frames: int) -> np.ndarray:
    """(K, 2, H, W): noise plus the class's motion, growing over the frames."""
    flow = rng.normal(0, 0.3, (frames, 2, SIDE, SIDE)).astype(np.float32)
    half = SIDE // 2
    strength = np.linspace(0.4, 1.0, frames)[:, None, None] * rng.uniform(0.8, 1.2)
    if label == 0:  # inner/outer brows up
        flow[:, 1, :half] -= strength
    elif label == 1:  # mouth corners outward (u < 0 on the image's left) and up
        flow[:, 0, half:, :half] -= strength
        flow[:, 0, half:, half:] += strength
        flow[:, 1, half:] -= 0.5 * strength
    else:  # jaw drop: lower face down
        flow[:, 1, half:] += strength
    return flow


def _quadrant_patches(flow: np.ndarray) -> np.ndarray:
    """(K, 4, 2, P, P): the four quadrants (brow L/R, mouth L/R), 2x2 area-averaged."""
    k, half = flow.shape[0], SIDE // 2
    quads = [flow[:, :, :half, :half], flow[:, :, :half, half:], flow[:, :, half:, :half], flow[:, :, half:, half:]]
    return np.stack([q.reshape(k, 2, PATCH, 2, PATCH, 2).mean((3, 5)) for q in quads], 1)


QUADRANT_BOXES = np.array([[0, 0, 12, 12], [12, 0, 24, 12], [0, 12, 12, 24], [12, 12, 24, 24]], np.float32)


def _face() -> np.ndarray:
    """A bright ellipse on black: stands in for the aligned onset face."""
    y, x = np.mgrid[:SIDE, :SIDE]
    return np.where(((x - SIDE / 2) / (0.4 * SIDE)) ** 2 + ((y - SIDE / 2) / (0.48 * SIDE)) ** 2 < 1, 180, 0).astype(np.uint8)


def synthetic_features(subject: str, clip: str, label: int, seed: int, frames: int) -> SampleFeatures:
    rng = np.random.default_rng(seed)
    flow = _flow_for(label, rng, frames)
    patches = _quadrant_patches(flow)
    mean_u, mean_v = patches[:, :, 0].mean((-2, -1)), patches[:, :, 1].mean((-2, -1))
    stats = np.stack([mean_u, mean_v, np.hypot(patches[:, :, 0], patches[:, :, 1]).mean((-2, -1)),
                      np.arctan2(mean_v, mean_u)], -1)
    aus = np.stack([np.clip(-mean_v[:, :2].mean(1), 0, None), np.clip(mean_u[:, 3] - mean_u[:, 2], 0, None)], -1)
    edge_w = 1.0 + np.tanh(np.stack([aus[:, 0], aus[:, 1], aus.sum(1), aus.sum(1)], -1))
    record = SampleRecord(dataset="synthetic", subject=subject, clip=clip, onset=1, apex=3, offset=6,
                          emotion=CLASSES[label], labels={"demo": label})
    return SampleFeatures(
        record=record, frame_numbers=np.arange(1, 7, dtype=np.int32), motion_curve=np.linspace(0, 1, 6, dtype=np.float32),
        ranked_frames=np.arange(6)[::-1].astype(np.int32), head_motion=np.zeros(6, np.float32), apex_estimated=5,
        apex_annotated=2, selected_frames=np.arange(6 - frames, 6, dtype=np.int32), flow=flow,
        strain=np.abs(flow).sum(1), onset_face=_face(),
        landmarks_onset=np.zeros((68, 2), np.float32), landmarks_apex=np.zeros((68, 2), np.float32),
        roi_boxes=QUADRANT_BOXES, roi_patches=patches, roi_stats=stats.astype(np.float32),
        au_activations=aus.astype(np.float32), au_truth=np.array([label == 0, label == 1], np.int8),
        edge_weights=edge_w.astype(np.float32),
    )


def build_store(path: Path, subjects: int = 6, per_subject: int = 6, frames: int = 3, seed: int = 0,
                uncommitted: int = 0, sources: tuple[str, ...] = ()) -> Path:
    """A store of ``subjects`` x ``per_subject`` samples, classes in turn; the
    last ``uncommitted`` slots are allocated but never committed. ``sources``: the
    store records a source dataset per sample, subject i's being sources[i % len]."""
    layout = StoreLayout(frames=frames, height=SIDE, width=SIDE, time=8, patch=PATCH, roi_names=ROIS, au_names=AUS,
                         edges=EDGES, class_schemes={"demo": CLASSES},
                         extra_arrays=(SOURCE_DATASET,) if sources else ())
    config = PipelineConfig()
    identity = StoreIdentity(dataset="synthetic", producer="pipeline", config=config.provenance(),
                             config_hash=config.config_hash(), layout=layout, store_config=config.store, flow_units="px")
    ensure_store(path, identity)
    items = [(f"s{s:02d}", f"c{c}", (s + c) % len(CLASSES)) for s in range(subjects) for c in range(per_subject)]
    ids = [f"{s}/{c}" for s, c, _ in items] + [f"ghost/{i}" for i in range(uncommitted)]
    slots = allocate_slots(path, ids)
    for i, (subject, clip, label) in enumerate(items):
        features = synthetic_features(subject, clip, label, seed * 10_000 + i, frames)
        if sources:
            features.extras[SOURCE_DATASET] = np.array(sources[int(subject[1:]) % len(sources)], dtype=str)
        write_sample(path, slots[f"{subject}/{clip}"], features, input_hash=f"h{i}")
    return path


@pytest.fixture
def make_batch():
    return tiny_batch


@pytest.fixture
def store_builder():
    return build_store


@pytest.fixture(scope="session")
def synthetic_store(tmp_path_factory) -> Path:
    return build_store(tmp_path_factory.mktemp("stores") / "synthetic.zarr", uncommitted=2)


@pytest.fixture(scope="session")
def second_store(tmp_path_factory) -> Path:
    return build_store(tmp_path_factory.mktemp("stores") / "second.zarr", subjects=3, seed=1)
