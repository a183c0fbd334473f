"""Work in batches: their sizes and order, per-sample I/O retries, a batch whose task died."""
from __future__ import annotations

import pytest
import zarr

import flows.ingest as ingest_flow
import stag_features.ingest.sample_steps as sample_ingest
from schemas.pipeline_config import PipelineConfig
from stag_features.ingest.plan import SampleOutcome, guided_batches
from stag_features.ingest.producers import PipelineProducer
from stag_features.ingest.steps import DEFERRED_HASH, IngestPlan, WorkItem
from stag_features.store.writer import slot_states

from .conftest import copy_store  # noqa: TID252


def test_guided_batches_shrink_to_single_items_and_keep_every_item_once():
    items = list(range(50))
    batches = guided_batches(items, parallelism=2, cost=lambda _i: 1.0)
    assert sorted(i for b in batches for i in b) == items
    sizes = [len(b) for b in batches]
    assert sizes == sorted(sizes, reverse=True) and sizes[0] == 12 and sizes[-4:] == [1, 1, 1, 1]
    assert len(batches) < 20  # far fewer tasks than samples
    assert [len(b) for b in guided_batches(items, parallelism=1, cost=lambda _i: 1.0)][:2] == [25, 12]


def test_guided_batches_put_the_costliest_first_and_alone():
    costs = {"short_a": 60, "long": 90, "mid": 72, "short_b": 60}
    batches = guided_batches(list(costs), parallelism=2, cost=costs.get)
    assert batches == [["long"], ["mid"], ["short_a"], ["short_b"]]  # ties keep the input order
    assert guided_batches([], parallelism=2, cost=costs.get) == []


def _item(n: int) -> WorkItem:
    return WorkItem(f"s/c{n}", n, "{}", f"hash{n}", 10)


@pytest.fixture
def no_delay(monkeypatch):
    monkeypatch.setattr(sample_ingest, "IO_RETRY_DELAY_S", 0)
    recorded = []
    monkeypatch.setattr(sample_ingest, "record_failure", lambda *args: recorded.append(args))
    return recorded


def test_transient_io_errors_are_retried_per_sample_and_the_batch_goes_on(monkeypatch, no_delay):
    calls: dict[str, int] = {}

    def flaky(store, item, producer):
        calls[item.sample_id] = calls.get(item.sample_id, 0) + 1
        if item.sample_id == "s/c1" and calls[item.sample_id] <= 2:
            raise TimeoutError("nfs hiccup")  # an OSError: transient
        if item.sample_id == "s/c2":
            raise ConnectionResetError("gone for good")
        return SampleOutcome(item.sample_id, "ok")

    monkeypatch.setattr(sample_ingest, "ingest_sample", flaky)
    outcomes = ingest_flow.ingest_batch_task.fn("store.zarr", [_item(1), _item(2), _item(3)],
                                                PipelineProducer(PipelineConfig()))
    assert [(o.sample_id, o.status) for o in outcomes] == [("s/c1", "ok"), ("s/c2", "failed"), ("s/c3", "ok")]
    assert calls == {"s/c1": 3, "s/c2": 1 + sample_ingest.IO_RETRIES, "s/c3": 1}
    assert outcomes[1].stage == "io" and outcomes[1].reason.endswith(f"(after {sample_ingest.IO_RETRIES} retries)")
    assert [(args[2], args[3]) for args in no_delay] == [("s/c2", "io")]  # recorded in the store


@pytest.mark.parametrize("deferred", [False, True], ids=["hashed-in-planning", "hash-deferred-to-the-task"])
def test_a_dead_batch_keeps_what_it_committed_and_records_the_rest(threaded_demo_store, tmp_path, deferred):
    _catalog, reference = threaded_demo_store
    store = copy_store(reference, tmp_path / "demo.zarr")
    states = slot_states(store)
    done_id, lost_id = sorted(states)[:2]
    zarr.open_group(str(store), mode="r+")["committed"][states[lost_id].slot] = False  # killed before its commit
    plan = IngestPlan(store=str(store), config_hash=states[done_id].config_hash, store_state="opened")
    items = [WorkItem(sid, states[sid].slot, "{}", DEFERRED_HASH if deferred else states[sid].input_hash)
             for sid in (done_id, lost_id)]
    outcomes = sample_ingest.record_dead_batch(plan, items, RuntimeError("worker killed"))
    assert [(o.sample_id, o.status) for o in outcomes] == [(done_id, "ok"), (lost_id, "failed")]
    after = slot_states(store)
    assert after[done_id].committed and after[done_id].failure_stage == ""
    assert after[lost_id].failure_stage == "io" and "worker killed" in after[lost_id].failure_reason
