"""``ingest_dataset``: one catalog dataset into its Zarr feature store.

Steps: read the catalog entry and the pipeline config -> prepare (adapter,
store, slots, skip decisions; bad sheet rows recorded) -> the samples to
compute, in batches, one task per batch -> summary (terminal table +
markdown artifact).

Tasks run in threads by default (one per core); ``task_runner`` may be a DaskTaskRunner
(``runner_for``: a local cluster of N processes, or an existing scheduler).
Batches (``guided_batches``): longest clips first, large batches first and
single samples last, sized for the runner's parallelism. A task costs ~0.1 s
of CPU in the flow process, the Dask worker and the Prefect server (Prefect
serialises its settings context per submission), which one task per sample
paid on every clip. Only transient I/O errors are retried, per sample, inside
its batch; a sample that fails for any other reason is recorded in the store
and the run goes on.
"""
from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.context import FlowRunContext
from prefect.futures import as_completed
from prefect.runtime import task_run
from prefect.task_runners import ThreadPoolTaskRunner

from flows.cluster import local_cluster_kwargs, started_cluster
from schemas.catalog import DatasetEntry
from schemas.pipeline_config import PipelineConfig
from stag_features.ingest_plan import RunSummary, SampleOutcome, guided_batches
from stag_features.ingest_steps import (
    IngestPlan,
    WorkItem,
    ingest_sample_with_retries,
    prepare_ingest,
    record_dead_batch,
    resolve_dataset,
    uses_flow_images,
)

# Prefect's thread pool is unbounded by default: one thread per core keeps CPU-bound
# stages (alignment, TV-L1) from thrashing and bounds the landmark models loaded (one per thread)
DEFAULT_THREADS = os.cpu_count() or 1


@task(name="prepare-ingest")
def prepare_task(entry: DatasetEntry, config_json: str, force: bool, only: list[str] | None) -> IngestPlan:
    return prepare_ingest(entry, PipelineConfig.model_validate_json(config_json), force,
                          only=set(only) if only is not None else None)


def _batch_run_name() -> str:
    items = task_run.parameters["items"]
    return f"ingest-{items[0].sample_id}" + (f"-and-{len(items) - 1}-more" if len(items) > 1 else "")


@task(name="ingest-batch", task_run_name=_batch_run_name)
def ingest_batch_task(store: str, items: list[WorkItem], config_json: str) -> list[SampleOutcome]:
    """The samples of one batch in turn; one sample's failure never stops the others."""
    config = PipelineConfig.model_validate_json(config_json)
    return [ingest_sample_with_retries(store, item, config) for item in items]


def _parallelism() -> int:
    """How many tasks the run's task runner executes at once (Dask: its worker threads)."""
    runner = FlowRunContext.get().task_runner
    prefect_dask = sys.modules.get("prefect_dask")
    if prefect_dask is not None and isinstance(runner, prefect_dask.DaskTaskRunner):
        return sum(runner.client.nthreads().values()) or DEFAULT_THREADS
    return min(getattr(runner, "_max_workers", DEFAULT_THREADS), DEFAULT_THREADS)


def _run_batches(plan: IngestPlan, config_json: str, logger) -> list[SampleOutcome]:
    """Submit the plan's work in batches; outcomes as batches finish (progress in the log)."""
    if not plan.work:
        return []  # no task: a Dask cluster is not even started
    batches = guided_batches(plan.work, _parallelism(), cost=lambda item: item.frames + 1)
    futures = [ingest_batch_task.submit(plan.store, batch, config_json) for batch in batches]
    by_id = {future.task_run_id: batch for future, batch in zip(futures, batches)}
    outcomes: list[SampleOutcome] = []
    for future in as_completed(futures):
        batch = by_id[future.task_run_id]
        try:
            done = future.result()
        except Exception as exc:  # noqa: BLE001 - a dead task: record its samples, never fail the run
            done = record_dead_batch(plan, batch, exc)
        for outcome in done:
            outcomes.append(outcome)
            logger.info("%d/%d %s %s %s", len(outcomes), len(plan.work), outcome.status, outcome.sample_id,
                        outcome.reason[:100])
    return outcomes


@flow(name="ingest_dataset", log_prints=True, task_runner=ThreadPoolTaskRunner(max_workers=DEFAULT_THREADS))
def ingest_dataset(catalog: str, dataset: str, force: bool = False, config_path: str | None = None,
                   only: list[str] | None = None) -> dict[str, int]:
    """Ingest ``dataset`` of ``catalog``; returns counts (ok, skipped, failed, bad_rows)."""
    started = time.perf_counter()
    logger = get_run_logger()
    entry, config = resolve_dataset(catalog, dataset, config_path)
    if uses_flow_images(entry):  # precomputed flow (MEGC 2019 composite): an import, no extraction
        summary = import_flow_images_task(entry, config.model_dump_json(by_alias=True), force)
        return _report(summary, dataset)
    plan = prepare_task(entry, config.model_dump_json(by_alias=True), force, only)
    logger.info("store %s (%s): %d samples to compute, %d settled without computing, %d bad sheet rows",
                plan.store, plan.store_state, len(plan.work), len(plan.decided), plan.bad_rows)
    config_json = config.model_dump_json(by_alias=True)
    outcomes = _run_batches(plan, config_json, logger)
    summary = RunSummary(dataset, plan.store, plan.decided + outcomes, plan.bad_rows, time.perf_counter() - started)
    return _report(summary, dataset)


def _report(summary: RunSummary, dataset: str) -> dict[str, int]:
    """Markdown artifact, terminal table, and the counts the flow returns."""
    create_markdown_artifact(summary.markdown(), key=f"ingest-{dataset}".lower().replace("_", "-"),
                             description=f"ingest of {dataset}")
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
        return DaskTaskRunner(cluster_class=started_cluster)
    return DaskTaskRunner(cluster_kwargs=local_cluster_kwargs(workers))
