"""Long clips split into prepare / TV-L1 pair / finish tasks: the config knob stays out of the
hash, which clips split, the store equals an unsplit run's, and failing pair tasks are retried,
recorded and reconciled like failing samples."""
from __future__ import annotations

import pytest
import zarr

import flows.ingest as ingest_flow
import stag_features.extract.sample_pipeline as sample_pipeline
import stag_features.ingest.producers as producers
import stag_features.ingest.sample_steps as sample_ingest
from flows.ingest import ingest_dataset, runner_for
from schemas.pipeline_config import PipelineConfig
from stag_features.ingest.plan import split_costliest
from stag_features.ingest.producers import PipelineProducer
from stag_features.ingest.steps import WorkItem
from stag_features.store.validate import validate_store
from stag_features.store.writer import slot_states

from .conftest import TINY_DEMO_OPTIONS, demo_entry, stores_equal, write_catalog  # noqa: TID252

# every clip of the tiny demo split (K = 3): a prepare, 3 single-pair tasks and a finish each
SPLIT_ALL = {"pairs_per_task": 1, "split_min_share": 0.01}


def test_execution_knobs_change_neither_the_hash_nor_the_recorded_config():
    base = PipelineConfig()
    tuned = base.with_overrides(execution={"pairs_per_task": 1, "split_min_share": 0.5})
    assert tuned.config_hash() == base.config_hash()
    assert tuned.provenance() == base.provenance() and "execution" not in base.provenance()
    assert base.config_hash() != base.with_overrides(selection={"k": 4}).config_hash()


def test_threads_and_lock_waits_change_neither_the_hash_nor_the_recorded_config():
    base = PipelineConfig()
    tuned = base.with_overrides(tvl1={"opencv_threads": 4}, store={"lock_timeout_s": 5.0})
    assert tuned.config_hash() == base.config_hash() and tuned.provenance() == base.provenance()
    assert "opencv_threads" not in base.provenance()["tvl1"] and "lock_timeout_s" not in base.provenance()["store"]
    assert base.config_hash() != base.with_overrides(tvl1={"epsilon": 0.04}).config_hash()
    assert base.config_hash() != base.with_overrides(store={"flow_dtype": "float32"}).config_hash()


def test_only_clips_that_are_a_large_share_of_a_worker_split_costliest_first():
    costs = {"short": 10, "long": 91, "mid": 73, "tiny": 1}
    whole, split = split_costliest(list(costs), parallelism=2, cost=costs.get, min_share=0.25)
    assert split == ["long", "mid"] and whole == ["short", "tiny"]  # threshold 0.25 * 175 / 2 = 21.9
    assert split_costliest(list(costs), parallelism=1, cost=costs.get, min_share=0.25) == (list(costs), [])
    many = {f"c{i}": 25 for i in range(50)}  # the demo: each clip 4% of a worker's share
    assert split_costliest(list(many), parallelism=2, cost=many.get, min_share=0.25)[1] == []


def _split_catalog(tmp_path, tiny_demo_raw, name: str):
    pipeline = {**TINY_DEMO_OPTIONS["pipeline"], "execution": SPLIT_ALL}
    store = tmp_path / f"{name}.zarr"
    return write_catalog(tmp_path, {"demo": demo_entry(tiny_demo_raw, store, pipeline=pipeline)}), store


def _same_provenance(a, b) -> None:
    attrs_a, attrs_b = (dict(zarr.open_group(str(s), mode="r").attrs) for s in (a, b))
    for attrs in (attrs_a, attrs_b):
        attrs.pop("created")
    assert attrs_a == attrs_b


@pytest.fixture
def two_workers(monkeypatch):
    """The threaded runner scheduled as for two workers (so that clips split on any machine)."""
    monkeypatch.setattr(ingest_flow, "_parallelism", lambda: 2)


def test_split_run_gives_the_unsplit_store(threaded_demo_store, tiny_demo_raw, tmp_path, two_workers):
    _catalog, reference = threaded_demo_store
    catalog, store = _split_catalog(tmp_path, tiny_demo_raw, "split")
    counts = ingest_dataset(catalog=str(catalog), dataset="demo")
    assert counts == {"ok": 10, "skipped": 0, "failed": 0, "bad_rows": 0}, counts
    assert stores_equal(store, reference) == []
    _same_provenance(store, reference)
    assert validate_store(store).ok


def test_failing_pair_tasks_are_recorded_and_a_rerun_completes_the_store(
        threaded_demo_store, tiny_demo_raw, tmp_path, two_workers, monkeypatch):
    _catalog, reference = threaded_demo_store
    catalog, store = _split_catalog(tmp_path, tiny_demo_raw, "failing")
    ids = sorted(slot_states(reference))
    buggy, dead = ids[1], ids[4]
    real_flow_pairs, real_split_pairs = sample_pipeline.flow_pairs, ingest_flow.split_pairs

    def flow_pairs(prepared, config, first=0, count=None):
        if prepared.sample_id == buggy and first == 1:
            raise RuntimeError("a bug in one pair")
        return real_flow_pairs(prepared, config, first, count)

    def split_pairs(store_, item, prepared, chunk, config):
        if item.sample_id == dead and chunk == 2:
            raise RuntimeError("worker killed")  # raised by the task itself: it fails, nothing recorded
        return real_split_pairs(store_, item, prepared, chunk, config)

    monkeypatch.setattr(sample_pipeline, "flow_pairs", flow_pairs)
    monkeypatch.setattr(ingest_flow, "split_pairs", split_pairs)
    counts = ingest_dataset(catalog=str(catalog), dataset="demo")
    assert counts == {"ok": 8, "skipped": 0, "failed": 2, "bad_rows": 0}, counts
    states = slot_states(store)
    assert (states[buggy].failure_stage, states[buggy].failure_reason) == ("unexpected", "RuntimeError: a bug in one pair")
    assert states[dead].failure_stage == "io" and "(its task failed)" in states[dead].failure_reason
    assert not states[buggy].committed and not states[dead].committed

    monkeypatch.setattr(sample_pipeline, "flow_pairs", real_flow_pairs)
    monkeypatch.setattr(ingest_flow, "split_pairs", real_split_pairs)
    counts = ingest_dataset(catalog=str(catalog), dataset="demo")  # both failures are retried on rerun
    assert counts == {"ok": 2, "skipped": 8, "failed": 0, "bad_rows": 0}, counts
    assert stores_equal(store, reference) == []


def test_transient_io_errors_of_a_pair_task_are_retried(monkeypatch):
    monkeypatch.setattr(sample_ingest, "IO_RETRY_DELAY_S", 0)
    recorded = []
    monkeypatch.setattr(sample_ingest, "record_failure", lambda *args: recorded.append(args))
    calls = []

    def flaky(prepared, config, first=0, count=None):
        calls.append(first)
        if len(calls) <= sample_ingest.IO_RETRIES:
            raise TimeoutError("nfs hiccup")
        return "flows"

    monkeypatch.setattr(sample_pipeline, "flow_pairs", flaky)
    item = WorkItem("s/c1", 1, "{}", "hash1", 10)
    config = PipelineProducer(PipelineConfig().with_overrides(execution={"pairs_per_task": 2}))
    assert sample_ingest.split_pairs("store.zarr", item, object(), 1, config) == "flows"
    assert calls == [2] * (1 + sample_ingest.IO_RETRIES) and recorded == []

    calls.clear()
    monkeypatch.setattr(sample_pipeline, "flow_pairs", lambda *a, **k: (_ for _ in ()).throw(ConnectionResetError("gone")))
    outcome = sample_ingest.split_pairs("store.zarr", item, object(), 0, config)
    assert (outcome.status, outcome.stage) == ("failed", "io") and [(r[2], r[3]) for r in recorded] == [("s/c1", "io")]
    failed = sample_ingest.split_pairs("store.zarr", item, outcome, 1, config)  # a later chunk passes it on
    assert failed is outcome and sample_ingest.finish_split("store.zarr", item, object(), [failed], config) is outcome


@pytest.mark.slow
def test_split_run_on_two_dask_workers_gives_the_unsplit_store(
        threaded_demo_store, tiny_demo_raw, tmp_path, prefect_server):
    _catalog, reference = threaded_demo_store
    catalog, store = _split_catalog(tmp_path, tiny_demo_raw, "dask_split")
    counts = ingest_dataset.with_options(task_runner=runner_for(workers=2))(catalog=str(catalog), dataset="demo")
    assert counts == {"ok": 10, "skipped": 0, "failed": 0, "bad_rows": 0}, counts
    assert stores_equal(store, reference) == []
    _same_provenance(store, reference)


def test_a_warmed_landmark_model_goes_to_the_first_thread_that_asks_only(monkeypatch):
    import threading

    import stag_features.extract.face as face

    built = []
    monkeypatch.setattr(face, "make_backend", lambda config: built.append(object()) or built[-1])
    monkeypatch.setattr(producers, "_SPARES", {})
    monkeypatch.setattr(producers, "_BACKENDS", threading.local())
    config = PipelineConfig()
    producers.warm_backend(config)  # as a Dask worker's preload does, before any task
    producers.warm_backend(config)  # warming twice builds once
    assert len(built) == 1
    first = producers.cached_backend(config)
    assert first is built[0] and producers.cached_backend(config) is first  # cached for this thread
    other = []
    thread = threading.Thread(target=lambda: other.append(producers.cached_backend(config)))
    thread.start()
    thread.join()
    assert other[0] is built[1] and len(built) == 2  # another thread builds its own
