"""``ingest_dataset``: one catalog dataset into its Zarr feature store.

Steps: read the catalog entry and the producer of its samples (the video
pipeline, or precomputed flow images: one path for both) -> prepare (adapter,
store, slots, skip decisions; bad sheet rows recorded) -> the samples to
compute, in batches, one task per batch -> summary (terminal table +
markdown artifact).

Tasks run in threads by default (one per core); ``task_runner`` may be a DaskTaskRunner
(``runner_for``: a local cluster of N processes, or an existing scheduler).
Batches (``guided_batches``): longest clips first, large batches first and
single samples last, sized for the runner's parallelism. A task run costs
~0.1 s of CPU in the flow process, the Dask worker and the Prefect server
together (Prefect serialises its settings for every submission and rebuilds
them in the worker; ``benchmarks/task_overhead.py``), which one task per
sample paid on every clip; a local worker's task runs share one Prefect
client (``flows.worker_preload``). With more than one worker, the clips that
are a large share of a worker's work (``split_costliest``,
``PipelineConfig.execution``) are split instead: a prepare task, tasks of a
few TV-L1 pairs each and a finish task that writes the sample
(``stag_features.ingest.sample_steps``); they are submitted first, longest clip
first, the batches of short clips after them.
Only transient I/O errors are retried, per sample, inside its task; a sample
that fails for any other reason is recorded in the store and the run goes on.

Progress: a listener registered with ``reporting_to`` (``stag-ingest``'s progress bar) hears
the run's steps (``step``), its plan (``planned``), every sample's outcome as its task
finishes (``sample``) and the summary (``finished``); the summary is then its to show. Without
one (``stag serve``, tests) the flow prints the summary into its log.
"""
from __future__ import annotations

import os
import sys
import time
from contextlib import contextmanager
from typing import Iterator, Protocol

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE
from prefect.context import FlowRunContext
from prefect.futures import as_completed
from prefect.runtime import task_run
from prefect.settings import PREFECT_API_URL
from prefect.task_runners import ThreadPoolTaskRunner

from flows.cluster import local_cluster, local_cluster_kwargs, started_cluster
from schemas.catalog import DatasetEntry
from stag_features.ingest.plan import RunSummary, SampleOutcome, guided_batches, recorded_failures
from stag_features.ingest.producers import Producer
from stag_features.ingest.sample_steps import (
    clips_to_split,
    finish_split,
    ingest_batch,
    pair_chunk_count,
    prepare_split,
    record_dead_batch,
    split_pairs,
    with_input_hashes,
    work_cost,
)
from stag_features.ingest.steps import IngestPlan, WorkItem, prepare_ingest, resolve_producer

# Prefect's thread pool is unbounded by default: one thread per core keeps CPU-bound
# stages (alignment, TV-L1) from thrashing and bounds the landmark models loaded (one per thread)
DEFAULT_THREADS = os.cpu_count() or 1


class IngestListener(Protocol):
    """What hears an ingest run's progress (``reporting_to``)."""

    def step(self, name: str) -> None: ...  # a step of the run starts ("planning", "computing")

    def planned(self, plan: IngestPlan, recorded: dict[str, tuple[str, str]]) -> None: ...

    def sample(self, outcome: SampleOutcome) -> None: ...  # one computed sample's outcome

    def finished(self, summary: RunSummary) -> None: ...


_LISTENERS: list[IngestListener] = []


@contextmanager
def reporting_to(listener: IngestListener) -> Iterator[IngestListener]:
    """Within the block, every ``ingest_dataset`` run of this process reports to ``listener``."""
    _LISTENERS.append(listener)
    try:
        yield listener
    finally:
        _LISTENERS.remove(listener)


def _tell(event: str, *args) -> None:
    for listener in _LISTENERS:
        getattr(listener, event)(*args)


@task(name="prepare-ingest")
def prepare_task(entry: DatasetEntry, producer: Producer, force: bool, only: list[str] | None) -> IngestPlan:
    return prepare_ingest(entry, producer, force, only=set(only) if only is not None else None)


def _batch_run_name() -> str:
    items = task_run.parameters["items"]
    return f"ingest-{items[0].sample_id}" + (f"-and-{len(items) - 1}-more" if len(items) > 1 else "")


@task(name="ingest-batch", task_run_name=_batch_run_name)
def ingest_batch_task(store: str, items: list[WorkItem], producer: Producer) -> list[SampleOutcome]:
    """The samples of one batch in turn (their TV-L1 pairs in shared calls with torch on a GPU:
    ``ingest_batch``); one sample's failure never stops the others."""
    return ingest_batch(store, items, producer)


def _split_run_name() -> str:
    params = task_run.parameters
    part = f"pairs-{params['chunk']}" if "chunk" in params else ("finish" if "parts" in params else "prepare")
    return f"ingest-{params['item'].sample_id}-{part}"


# split-clip tasks hand arrays (aligned crops, flow) to each other: no cache key over them, no persisted result
_SPLIT_TASK = {"task_run_name": _split_run_name, "cache_policy": NO_CACHE, "persist_result": False}


@task(name="clip-prepare", **_SPLIT_TASK)
def prepare_clip_task(store: str, item: WorkItem, producer: Producer):
    """A split clip's decode, landmarks, alignment and motion (or its recorded failure)."""
    return prepare_split(store, item, producer)


@task(name="clip-pairs", **_SPLIT_TASK)
def clip_pairs_task(store: str, item: WorkItem, prepared, chunk: int, producer: Producer):
    """TV-L1 and strain of one chunk of a split clip's pairs."""
    return split_pairs(store, item, prepared, chunk, producer)


@task(name="clip-finish", **_SPLIT_TASK)
def finish_clip_task(store: str, item: WorkItem, prepared, parts: list, producer: Producer) -> list[SampleOutcome]:
    """ROIs, AUs, graph and the write of a split clip: its outcome (a one-item list, like a batch's)."""
    return [finish_split(store, item, prepared, parts, producer)]


def _parallelism() -> int:
    """How many tasks the run's task runner executes at once (Dask: its worker threads)."""
    runner = FlowRunContext.get().task_runner
    prefect_dask = sys.modules.get("prefect_dask")
    if prefect_dask is not None and isinstance(runner, prefect_dask.DaskTaskRunner):
        return sum(runner.client.nthreads().values()) or DEFAULT_THREADS
    return min(getattr(runner, "_max_workers", DEFAULT_THREADS), DEFAULT_THREADS)


def _submit_split(plan: IngestPlan, items: list[WorkItem], producer: Producer) -> list:
    """The tasks of each split clip, prepares first (longest clip first), then pair chunks, then
    finishes, so that a worker waits on nothing earlier work does not already hold: the finish futures."""
    prepared = [prepare_clip_task.submit(plan.store, item, producer) for item in items]
    parts = [[clip_pairs_task.submit(plan.store, item, clip, chunk, producer)
              for chunk in range(pair_chunk_count(producer))] for item, clip in zip(items, prepared)]
    return [finish_clip_task.submit(plan.store, item, clip, chunks, producer)
            for item, clip, chunks in zip(items, prepared, parts)]


def _run_batches(plan: IngestPlan, producer: Producer, logger) -> list[SampleOutcome]:
    """Submit the plan's work: long clips split, the others in batches; outcomes as tasks finish
    (progress in the log)."""
    if not plan.work:
        return []  # no task: a Dask cluster is not even started
    parallelism = _parallelism()
    whole, split = clips_to_split(plan.work, parallelism, producer)
    split = with_input_hashes(split, producer)  # a split clip's three kinds of task share one item
    batches = guided_batches(whole, parallelism, cost=work_cost)
    futures = _submit_split(plan, split, producer)
    futures += [ingest_batch_task.submit(plan.store, batch, producer) for batch in batches]
    by_id = {future.task_run_id: batch for future, batch in zip(futures, [[item] for item in split] + batches)}
    outcomes: list[SampleOutcome] = []
    for future in as_completed(futures):
        batch = by_id[future.task_run_id]
        try:
            done = future.result()
        except Exception as exc:  # noqa: BLE001 - a dead task: record its samples, never fail the run
            done = record_dead_batch(plan, batch, exc)
        for outcome in done:
            outcomes.append(outcome)
            _tell("sample", outcome)
            logger.info("%d/%d %s %s %s", len(outcomes), len(plan.work), outcome.status, outcome.sample_id,
                        outcome.reason[:100])
    return outcomes


@flow(name="ingest_dataset", log_prints=True, task_runner=ThreadPoolTaskRunner(max_workers=DEFAULT_THREADS))
def ingest_dataset(catalog: str, dataset: str, force: bool = False, config_path: str | None = None,
                   only: list[str] | None = None) -> dict[str, int]:
    """Ingest ``dataset`` of ``catalog``; returns counts (ok: computed, skipped: reused or an earlier failure
    that stands, failed: in this run or a bad row naming a sample, bad_rows)."""
    started = time.perf_counter()
    logger = get_run_logger()
    _tell("step", "planning")
    entry, producer = resolve_producer(catalog, dataset, config_path)
    plan = prepare_task(entry, producer, force, only)
    recorded = recorded_failures(plan.store)
    planned = time.perf_counter()
    logger.info("store %s (%s): %d samples to compute, %d decided without computing (committed earlier, or an "
                "earlier failure that stands), %d bad sheet rows",
                plan.store, plan.store_state, len(plan.work), len(plan.decided), plan.bad_rows)
    _tell("planned", plan, recorded)
    _tell("step", "computing")
    outcomes = _run_batches(plan, producer, logger)
    done = time.perf_counter()
    summary = RunSummary(dataset, plan.store, plan.decided + outcomes, plan.bad_rows, done - started, recorded,
                         phase_seconds={"planning": planned - started, "computing": done - planned})
    return _report(summary, dataset)


def _report(summary: RunSummary, dataset: str) -> dict[str, int]:
    """Markdown artifact, the summary (to the listeners, else printed into the log), and the counts
    the flow returns."""
    create_markdown_artifact(summary.markdown(), key=f"ingest-{dataset}".lower().replace("_", "-"),
                             description=f"ingest of {dataset}")
    if _LISTENERS:
        _tell("finished", summary)
    else:
        print(summary.table())
    return {"ok": summary.count("ok"), "skipped": summary.count("skipped"), "failed": summary.count("failed"),
            "bad_rows": summary.bad_rows}


def runner_for(workers: int | None = None, dask_address: str | None = None, early: bool = False):
    """The task runner for a run: threads (None), a local Dask cluster of N processes (``early``: the
    one an ``EarlyCluster`` block is starting), or an existing one."""
    if not workers and not dask_address:
        return None
    from prefect_dask import DaskTaskRunner

    if dask_address:
        return DaskTaskRunner(address=dask_address)
    if early:
        return DaskTaskRunner(cluster_class=started_cluster)  # started by this command: its environment
    # this process's API address, even one set in code (prefect.settings.temporary_settings)
    return DaskTaskRunner(cluster_class=local_cluster,
                          cluster_kwargs=local_cluster_kwargs(workers, PREFECT_API_URL.value()))
