"""``stag serve``: run ``ingest_catalog`` on a schedule against a Prefect server.

    prefect server start --host 127.0.0.1 --port 4200            # in another terminal
    export PREFECT_API_URL=http://127.0.0.1:4200/api
    stag serve --catalog data_catalog.yaml --interval 3600

The process stays in the foreground, registers a deployment named
``stag-ingest-catalog`` and runs the flow at every tick until interrupted.
"""
from __future__ import annotations

import argparse
from pathlib import Path

DEFAULT_INTERVAL_S = 3600
DEPLOYMENT_NAME = "stag-ingest-catalog"


def serve(args: argparse.Namespace) -> int:
    from prefect.settings import PREFECT_API_URL

    if not PREFECT_API_URL.value():
        raise ValueError("stag serve needs a running Prefect server: start one with "
                         "`prefect server start --host 127.0.0.1 --port 4200` and set "
                         "PREFECT_API_URL=http://127.0.0.1:4200/api")
    catalog = Path(args.catalog).resolve()
    if not catalog.is_file():
        raise FileNotFoundError(f"catalog file {catalog} does not exist")
    from flows.scheduled import ingest_catalog

    schedule = {"cron": args.cron} if args.cron else {"interval": args.interval}
    print(f"serving {DEPLOYMENT_NAME} on {PREFECT_API_URL.value()} ({schedule}) for {catalog}")
    # limit=1: a tick that comes while a run is still going waits, so two runs never ingest the same clips
    ingest_catalog.serve(name=args.name, parameters={"catalog": str(catalog)}, limit=1, **schedule)
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``stag serve``."""
    parser = subparsers.add_parser("serve", help="ingest a catalog's datasets on a schedule (needs a Prefect server)")
    parser.add_argument("--catalog", default="data_catalog.yaml", help="data catalog YAML")
    when = parser.add_mutually_exclusive_group()
    when.add_argument("--interval", type=float, default=DEFAULT_INTERVAL_S, help="seconds between runs (default 3600)")
    when.add_argument("--cron", help="cron schedule instead of an interval, e.g. '0 3 * * *'")
    parser.add_argument("--name", default=DEPLOYMENT_NAME, help="deployment name")
    parser.set_defaults(handler=serve)
