"""TV-L1 pairs of several clips in one torch call (``ingest_batch``): the store equals a clip-by-clip
run's byte for byte, the calls hold the pairs of several clips, a failing clip or a failing shared
call leaves the others' features as they are, and only the torch backend on a GPU batches by default."""
from __future__ import annotations

import numpy as np
import pytest

import stag_features.extract.flow as flow_module
import stag_features.extract.sample_pipeline as sample_pipeline
from schemas.catalog import DatasetEntry
from schemas.pipeline_config import PipelineConfig
from stag_features.errors import SampleError
from stag_features.ingest import sample_steps
from stag_features.ingest.producers import PipelineProducer
from stag_features.ingest.steps import ingest_in_process, prepare_ingest
from stag_features.store.query import open_store

# 1 subject x 5 emotions = 5 clips of K = 3 pairs on 96 x 96 crops (the tiny demo of tests/store)
DEMO_OPTIONS = {"n_subjects": 1, "clips_per_emotion": 1, "seed": 0}
TORCH_CPU = PipelineConfig().with_overrides(align={"crop_size": 96}, selection={"k": 3}, store={"max_time": 32},
                                            tvl1={"epsilon": 0.05, "backend": "torch", "device": "cpu"})
COMPARED = ("flow", "strain", "roi_patches", "roi_stats", "au_activation", "edge_weight", "selected_frames")


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """The raw demo clips and a store of them ingested clip by clip (``ingest_in_process``)."""
    from stag_features.adapters.synthetic import load_records

    folder = tmp_path_factory.mktemp("batching")
    entry = DatasetEntry(name="demo", adapter="synthetic", root=folder / "raw", store=str(folder / "single.zarr"),
                         options=DEMO_OPTIONS)
    load_records(entry)
    summary = ingest_in_process(entry, PipelineProducer(TORCH_CPU))
    assert summary.count("ok") == 5, summary.table()
    return entry


def batched_store(demo, name: str, pairs_per_call: int):
    """A store of the demo ingested by ``ingest_batch`` over the whole plan: its path and the outcomes."""
    entry = demo.model_copy(update={"store": str(demo.root.parent / f"{name}.zarr")})
    producer = PipelineProducer(TORCH_CPU)
    plan = prepare_ingest(entry, producer)
    outcomes = sample_steps.ingest_batch(plan.store, plan.work, producer, pairs_per_call=pairs_per_call)
    assert [o.sample_id for o in outcomes] == [item.sample_id for item in plan.work]
    return entry.store, outcomes


def differing(a: str, b: str, samples: list[str]) -> list[str]:
    ds_a, ds_b = open_store(a).sel(sample=samples), open_store(b).sel(sample=samples)
    return [name for name in COMPARED if not np.array_equal(ds_a[name].values, ds_b[name].values)]


def test_pairs_of_several_clips_in_one_call_give_the_clip_by_clip_store(demo, monkeypatch):
    calls = []
    solve = flow_module.tvl1_flow_pairs

    def counted(firsts, seconds, config):
        calls.append(len(firsts))
        return solve(firsts, seconds, config)

    monkeypatch.setattr(flow_module, "tvl1_flow_pairs", counted)
    store, outcomes = batched_store(demo, "batched", pairs_per_call=7)
    assert [o.status for o in outcomes] == ["ok"] * 5
    assert calls == [9, 6]  # 3 clips (9 pairs >= 7), then the last 2
    assert set(outcomes[0].timings) >= {"decode", "face", "tvl1", "strain", "rois"}
    samples = [o.sample_id for o in outcomes]
    assert differing(store, demo.store, samples) == []


def test_a_failing_clip_or_shared_call_leaves_the_others_as_clip_by_clip(demo, monkeypatch):
    prepare, solve = sample_pipeline.prepare_sample, flow_module.tvl1_flow_pairs
    bad = None

    def prepare_failing(record, config, backend=None, frames=None):
        nonlocal bad
        bad = bad or record.sample_id
        if record.sample_id == bad:
            raise SampleError(record.sample_id, "face", "no face (test)")
        return prepare(record, config, backend=backend, frames=frames)

    def shared_call_fails(firsts, seconds, config):
        if len(firsts) > TORCH_CPU.selection.k:
            raise RuntimeError("CUDA out of memory (test)")
        return solve(firsts, seconds, config)

    monkeypatch.setattr(sample_pipeline, "prepare_sample", prepare_failing)
    monkeypatch.setattr(flow_module, "tvl1_flow_pairs", shared_call_fails)
    store, outcomes = batched_store(demo, "failing", pairs_per_call=100)
    assert [(o.status, o.stage) for o in outcomes] == [("failed", "face")] + [("ok", "")] * 4
    assert outcomes[0].sample_id == bad and "no face (test)" in outcomes[0].reason
    assert differing(store, demo.store, [o.sample_id for o in outcomes[1:]]) == []
    states = sample_steps.slot_states(store)
    assert states[bad].failure_stage == "face" and not states[bad].committed


def test_only_the_torch_backend_on_a_gpu_batches_clips_by_default(monkeypatch):
    opencv = PipelineProducer(PipelineConfig())
    assert not sample_steps.batches_pairs_on_device(opencv)
    assert not sample_steps.batches_pairs_on_device(PipelineProducer(TORCH_CPU))
    on_gpu = PipelineProducer(TORCH_CPU.with_overrides(tvl1={"device": "cuda"}))
    monkeypatch.setattr("torch.cuda.is_available", lambda: True)
    assert sample_steps.batches_pairs_on_device(on_gpu)
    assert sample_steps.batches_pairs_on_device(PipelineProducer(TORCH_CPU.with_overrides(tvl1={"device": "auto"})))
    assert not sample_steps.batches_pairs_on_device(opencv)
    alone = []
    monkeypatch.setattr(sample_steps, "ingest_sample_with_retries", lambda store, item, producer: alone.append(item))
    sample_steps.ingest_batch("unused.zarr", ["a", "b"], PipelineProducer(TORCH_CPU))
    assert alone == ["a", "b"]  # on the CPU each sample alone
