"""``ingest_catalog``: bring every store of a data catalog up to date.

Steps: read the catalog -> per dataset, decide whether its store is missing,
built with another config or lacks clips the sheet lists
(``stag_features.ingest.steps.stale_reason``) -> run ``ingest_dataset`` for
those (rebuilding a store whose config changed). One dataset's error is
logged and does not stop the others. ``stag serve`` runs this flow on a
schedule against a Prefect server.
"""
from __future__ import annotations

from prefect import flow, get_run_logger, task

from flows.ingest import ingest_dataset
from schemas.catalog import load_catalog
from stag_features.ingest.steps import resolve_producer, stale_reason


@task(name="check-store")
def check_store_task(catalog: str, dataset: str) -> str | None:
    return stale_reason(*resolve_producer(catalog, dataset))


@flow(name="ingest_catalog", log_prints=True)
def ingest_catalog(catalog: str) -> dict[str, str]:
    """Ingest every dataset of ``catalog`` whose store is not up to date; returns dataset -> what happened."""
    logger = get_run_logger()
    done: dict[str, str] = {}
    for name in load_catalog(catalog).names():  # an unavailable dataset is logged as an error below
        try:
            reason = check_store_task(catalog, name)
            if reason is None:
                done[name] = "up to date"
                continue
            logger.info("dataset %s: %s: ingesting", name, reason)
            counts = ingest_dataset(catalog=catalog, dataset=name, force=reason == "built with another config")
            done[name] = f"{reason}: ingested {counts}"
        except Exception as exc:  # noqa: BLE001 - one dataset's problem must not stop the others
            logger.error("dataset %s: %s: %s", name, type(exc).__name__, exc)
            done[name] = f"error: {type(exc).__name__}: {exc}"
    return done
