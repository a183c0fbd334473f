"""``stag-ingest``: ingest one catalog dataset into its feature store.

    stag-ingest --catalog data_catalog.yaml --dataset demo
    stag-ingest --catalog data_catalog.yaml --dataset casme2 --workers 2 --config pipeline.yaml
    stag-ingest --catalog data_catalog.yaml --dataset casme2 --dask-address tcp://10.0.0.5:8786

Without a Prefect server (PREFECT_API_URL unset) the command starts one of its
own for the run (``flows.local_server``; every local Dask worker reports to it),
which dies with the command however it ends, and stops any such server that an
earlier, killed run left behind. Telemetry and analytics are off unless the user
sets PREFECT_SERVER_ANALYTICS_ENABLED or DO_NOT_TRACK.

Fast path: before Prefect or Dask is imported, the command checks the store
read-only (``stag_features.ingest.steps.settled_plan``). When every clip of
the sheet is already settled under the same config hash (committed, or failed
on its unchanged input) and every bad sheet row is already recorded, it prints
the usual summary and exits without a flow run, a cluster or a server. A store
built with another config is refused there with the flow's message. ``--force``
always runs the flow. Imports stay lazy so that this path loads no more than
the catalog, the config, the adapter and zarr.

Otherwise, with ``--workers N``, the local Dask cluster starts at once in a
background thread (``flows.cluster.EarlyCluster``), overlapping the workers'
start-up with Prefect's import, the flow run's creation and the planning.

What the terminal shows: one progress bar (``stag_cli.progress.IngestProgress``: the step
under way, then samples done with counts computed / failed / skipped, elapsed and remaining
time), then the summary (``stag_features.ingest.plan.RunSummary.table``). Prefect's own
records go to the Prefect API (the UI) and to a log file of the run,
``<store>.logs/ingest-<UTC time>.log`` (``stag_cli.prefect_logs``), not to the terminal;
``--verbose`` prints them too, with a line per computed sample.
"""
from __future__ import annotations

import argparse
import gc
import os
import sys
import time
from contextlib import ExitStack
from datetime import datetime, timezone
from pathlib import Path

from flows.cluster import API_URL_VARIABLE, EarlyCluster
from flows.local_server import QUIET
from schemas.catalog import CatalogError
from stag_cli.parsing import OneLineParser
from stag_features.store.identity import StoreMismatchError

DRAIN_TIMEOUT_S = 10.0  # at most this long to send Prefect's queued logs and events at the end of a run


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="stag-ingest", description="Ingest a catalog dataset into its Zarr store.")
    parser.add_argument("--catalog", required=True, help="data catalog YAML (e.g. data_catalog.yaml)")
    parser.add_argument("--dataset", required=True, help="dataset name in the catalog")
    parser.add_argument("--config", help="pipeline config YAML (default: the entry's options.pipeline, else defaults)")
    parser.add_argument("--force", action="store_true",
                        help="recompute every sample; rebuild a store that was made with another config")
    runners = parser.add_mutually_exclusive_group()
    runners.add_argument("--workers", type=int, help="run on a local Dask cluster of N worker processes")
    runners.add_argument("--dask-address", help="run on an existing Dask scheduler (tcp://host:8786)")
    parser.add_argument("--verbose", action="store_true",
                        help="print a line per computed sample and Prefect's own records (otherwise in the run's "
                             "log file, <store>.logs/)")
    return parser


def settled_run(args: argparse.Namespace) -> int | None:
    """The fast path: the exit code of a run with nothing to do (its summary printed), or None
    when the flow must run. Raises what the flow would raise before writing (a refused config)."""
    started = time.perf_counter()
    from stag_features.ingest.plan import RunSummary, recorded_failures
    from stag_features.ingest.steps import resolve_producer, settled_plan

    entry, producer = resolve_producer(args.catalog, args.dataset, args.config)
    plan = settled_plan(entry, producer)
    if plan is None:
        return None
    summary = RunSummary(args.dataset, plan.store, plan.decided, plan.bad_rows, time.perf_counter() - started,
                         recorded_failures(plan.store))
    print(summary.table())
    print(f"  nothing to compute (config hash {plan.config_hash[:12]}): no flow run started")
    return 0 if summary.count("failed") == 0 else 1


def own_server(stack: ExitStack):
    """Without PREFECT_API_URL: a Prefect server of this command's own (``flows.local_server``: it dies
    with the command, however it ends), started now and its URL set for everything started after it
    (the flow, Dask workers); after stopping any such server an earlier, killed run left behind.
    Returns it (``wait`` before the flow runs), or None when the user's server is configured."""
    if os.environ.get(API_URL_VARIABLE):
        return None
    from flows.local_server import PrefectServer, prefect_home, stop_orphaned_servers

    home = prefect_home()
    home.mkdir(parents=True, exist_ok=True)
    stop_orphaned_servers(home)
    server = stack.enter_context(PrefectServer(home / f"stag-ingest-server-{os.getpid()}.log", owned=True))
    os.environ[API_URL_VARIABLE] = server.url
    stack.callback(os.environ.pop, API_URL_VARIABLE, None)
    stack.callback(drain_prefect_clients)  # before the server stops (callbacks run last in, first out)
    return server


def drain_prefect_clients(timeout_s: float = DRAIN_TIMEOUT_S) -> None:
    """Send the logs and events Prefect still queues for the API, so that none is attempted (and
    reported as an error at exit) after our own server has stopped."""
    if "prefect" not in sys.modules:
        return
    from prefect.events.worker import EventsWorker
    from prefect.logging.handlers import APILogWorker

    for service in (APILogWorker, EventsWorker):
        service.drain_all(timeout=timeout_s)


def run_log_file(catalog: str, dataset: str) -> Path:
    """Where Prefect's records of this run go: ``<store>.logs/ingest-<UTC time>.log`` beside the
    dataset's store."""
    from schemas.catalog import load_catalog

    store = Path(load_catalog(catalog).get(dataset).store)
    stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
    return store.with_name(store.name + ".logs") / f"ingest-{stamp}-{os.getpid()}.log"


def run_flow(args: argparse.Namespace, progress) -> dict[str, int]:
    """The flow run: our own Prefect server if none is configured, Prefect's records into the run's
    log file, the Dask cluster if asked for; progress to ``progress``. Returns the flow's counts."""
    from stag_cli.prefect_logs import prefect_records_to

    log_file = run_log_file(args.catalog, args.dataset)
    with ExitStack() as stack:
        progress.step("starting the Prefect server" if not os.environ.get(API_URL_VARIABLE) else "starting")
        server = own_server(stack)  # started before the log block: the server keeps its own log
        stack.enter_context(prefect_records_to(log_file, verbose=args.verbose))
        # the workers start (and import the pipeline) while this process imports Prefect and plans
        early = stack.enter_context(EarlyCluster(args.workers)) if args.workers else None
        from flows.ingest import ingest_dataset, reporting_to, runner_for

        if server is not None:
            server.wait()
        runner = runner_for(args.workers, args.dask_address, early=early is not None)
        flow = ingest_dataset.with_options(task_runner=runner) if runner is not None else ingest_dataset
        stack.enter_context(reporting_to(progress))
        counts = flow(catalog=args.catalog, dataset=args.dataset, force=args.force, config_path=args.config)
    if progress.summary is not None:
        progress.summary.phase_seconds = {**progress.step_seconds, **progress.summary.phase_seconds}
        progress.summary.log_file = str(log_file)
    return counts


def ingest_main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.workers is not None and args.workers < 1:
        print(f"stag-ingest: error: --workers must be at least 1, got {args.workers}", file=sys.stderr)
        return 2
    for name, value in QUIET.items():  # no telemetry, no analytics, unless the user turns them on
        os.environ.setdefault(name, value)
    try:
        if not args.force and (code := settled_run(args)) is not None:
            return code
        from stag_cli.progress import IngestProgress

        with IngestProgress(args.dataset, verbose=args.verbose) as progress:
            counts = run_flow(args, progress)
        if progress.summary is not None:
            print(progress.summary.table())
    except (StoreMismatchError, CatalogError, FileNotFoundError, ValueError) as exc:
        print(f"stag-ingest: error: {exc}", file=sys.stderr)
        return 2
    return 0 if counts["failed"] == 0 else 1


def main() -> None:
    """The ``stag-ingest`` program. Its work done and its output flushed, the process exits without
    the interpreter's last garbage collection over every object Prefect, Dask and zarr left (about
    0.5 s after a flow run; the OS reclaims the memory anyway): ``gc.freeze`` moves them out of the
    collector's reach. Interpreter shutdown otherwise runs as usual (atexit, Prefect's log and event
    queues drained, module teardown)."""
    code = ingest_main()
    gc.freeze()
    sys.exit(code)


if __name__ == "__main__":
    main()
