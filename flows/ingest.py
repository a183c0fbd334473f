"""``ingest_dataset``: one catalog dataset into its Zarr feature store.

Steps: read the catalog entry and the pipeline config -> prepare (adapter,
store, slots, skip decisions; bad sheet rows recorded) -> one task per sample
(``.map``) -> summary (terminal table + markdown artifact).

Tasks run in threads by default (one per core); ``task_runner`` may be a DaskTaskRunner
(``runner_for``: a local cluster of N processes, or an existing scheduler).
Only transient I/O errors are retried; a sample that fails for any other
reason is recorded in the store and the run goes on.
"""
from __future__ import annotations

import os
import time
from pathlib import Path

from prefect import flow, get_run_logger, task, unmapped
from prefect.artifacts import create_markdown_artifact
from prefect.futures import as_completed
from prefect.task_runners import ThreadPoolTaskRunner

from schemas.catalog import DatasetEntry, load_catalog
from schemas.pipeline_config import PipelineConfig
from stag_features.ingest_plan import RunSummary, SampleOutcome
from stag_features.ingest_steps import (
    IngestPlan,
    WorkItem,
    entry_pipeline_config,
    ingest_sample,
    prepare_ingest,
    uses_flow_images,
    with_resolved_options,
)
from stag_features.store import record_failure

# Prefect's thread pool is unbounded by default: one thread per core keeps CPU-bound
# stages (alignment, TV-L1) from thrashing and bounds the landmark models loaded (one per thread)
DEFAULT_THREADS = os.cpu_count() or 1
IO_RETRIES = 2
IO_RETRY_DELAY_S = 2


def _transient_io(task, task_run, state) -> bool:
    """Retry only OSErrors that ingest_sample let through (permanent ones are recorded there)."""
    exc = state.result(raise_on_failure=False)
    return isinstance(exc, OSError)


@task(name="prepare-ingest")
def prepare_task(entry: DatasetEntry, config_json: str, force: bool, only: list[str] | None) -> IngestPlan:
    return prepare_ingest(entry, PipelineConfig.model_validate_json(config_json), force,
                          only=set(only) if only is not None else None)


@task(name="ingest-sample", retries=IO_RETRIES, retry_delay_seconds=IO_RETRY_DELAY_S,
      retry_condition_fn=_transient_io, task_run_name="ingest-{item.sample_id}")
def ingest_sample_task(store: str, item: WorkItem, config_json: str) -> SampleOutcome:
    return ingest_sample(store, item, PipelineConfig.model_validate_json(config_json))


@task(name="import-flow-images")
def import_flow_images_task(entry: DatasetEntry, config_json: str, force: bool) -> RunSummary:
    from stag_features.composite_import import import_composite

    return import_composite(entry, entry.store, Path(str(entry.options["flow_dir"])),
                            PipelineConfig.model_validate_json(config_json), force=force)


def _collect(futures, plan: IngestPlan, logger) -> list[SampleOutcome]:
    """Outcomes as tasks finish (progress in the log); a task that failed after its retries is recorded."""
    items = {future.task_run_id: item for future, item in zip(futures, plan.work)}
    outcomes: list[SampleOutcome] = []
    for done, future in enumerate(as_completed(futures), start=1):
        try:
            outcome = future.result()
        except Exception as exc:  # noqa: BLE001 - retries exhausted: record, never fail the run
            item = items[future.task_run_id]
            reason = f"{type(exc).__name__}: {exc} (after {IO_RETRIES} retries)"
            record_failure(plan.store, item.slot, item.sample_id, "io", reason, item.input_hash)
            outcome = SampleOutcome(item.sample_id, "failed", "io", reason)
        outcomes.append(outcome)
        logger.info("%d/%d %s %s %s", done, len(futures), outcome.status, outcome.sample_id, outcome.reason[:100])
    return outcomes


@flow(name="ingest_dataset", log_prints=True, task_runner=ThreadPoolTaskRunner(max_workers=DEFAULT_THREADS))
def ingest_dataset(catalog: str, dataset: str, force: bool = False, config_path: str | None = None,
                   only: list[str] | None = None) -> dict[str, int]:
    """Ingest ``dataset`` of ``catalog``; returns counts (ok, skipped, failed, bad_rows)."""
    started = time.perf_counter()
    logger = get_run_logger()
    loaded = load_catalog(catalog)
    entry = with_resolved_options(loaded.get(dataset), loaded.root)
    config = entry_pipeline_config(entry, config_path)
    if uses_flow_images(entry):  # precomputed flow (MEGC 2019 composite): an import, no extraction
        summary = import_flow_images_task(entry, config.model_dump_json(by_alias=True), force)
        return _report(summary, dataset)
    plan = prepare_task(entry, config.model_dump_json(by_alias=True), force, only)
    logger.info("store %s (%s): %d samples to compute, %d settled without computing, %d bad sheet rows",
                plan.store, plan.store_state, len(plan.work), len(plan.decided), plan.bad_rows)
    config_json = config.model_dump_json(by_alias=True)
    futures = ingest_sample_task.map(unmapped(plan.store), plan.work, unmapped(config_json))
    outcomes = _collect(futures, plan, logger)
    summary = RunSummary(dataset, plan.store, plan.decided + outcomes, plan.bad_rows, time.perf_counter() - started)
    return _report(summary, dataset)


def _report(summary: RunSummary, dataset: str) -> dict[str, int]:
    """Markdown artifact, terminal table, and the counts the flow returns."""
    create_markdown_artifact(summary.markdown(), key=f"ingest-{dataset}".lower().replace("_", "-"),
                             description=f"ingest of {dataset}")
    print(summary.table())
    return {"ok": summary.count("ok"), "skipped": summary.count("skipped"), "failed": summary.count("failed"),
            "bad_rows": summary.bad_rows}


def runner_for(workers: int | None = None, dask_address: str | None = None):
    """The task runner for a run: threads (None), a local Dask cluster of N processes, or an existing one."""
    if not workers and not dask_address:
        return None
    from prefect_dask import DaskTaskRunner

    if dask_address:
        return DaskTaskRunner(address=dask_address)
    return DaskTaskRunner(cluster_kwargs={"n_workers": workers, "threads_per_worker": 1, "processes": True,
                                         "dashboard_address": None})
