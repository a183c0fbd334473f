"""``stag-ingest``: ingest one catalog dataset into its feature store.

    stag-ingest --catalog data_catalog.yaml --dataset demo
    stag-ingest --catalog data_catalog.yaml --dataset casme2 --workers 2 --config pipeline.yaml
    stag-ingest --catalog data_catalog.yaml --dataset casme2 --dask-address tcp://10.0.0.5:8786

Without a Prefect server (PREFECT_API_URL unset) Prefect starts a temporary
one for the run; Dask runs (--workers / --dask-address) need a running server
(``prefect server start``) so that every worker reports to the same one.
"""
from __future__ import annotations

import argparse
import sys

from schemas.catalog import CatalogError
from stag_features.store import StoreMismatchError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="stag-ingest", description="Ingest a catalog dataset into its Zarr store.")
    parser.add_argument("--catalog", required=True, help="data catalog YAML (e.g. data_catalog.yaml)")
    parser.add_argument("--dataset", required=True, help="dataset name in the catalog")
    parser.add_argument("--config", help="pipeline config YAML (default: the entry's options.pipeline, else defaults)")
    parser.add_argument("--force", action="store_true",
                        help="recompute every sample; rebuild a store that was made with another config")
    runners = parser.add_mutually_exclusive_group()
    runners.add_argument("--workers", type=int, help="run on a local Dask cluster of N worker processes")
    runners.add_argument("--dask-address", help="run on an existing Dask scheduler (tcp://host:8786)")
    return parser


def ingest_main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.workers is not None and args.workers < 1:
        print(f"stag-ingest: error: --workers must be at least 1, got {args.workers}", file=sys.stderr)
        return 2
    from flows.ingest import ingest_dataset, runner_for

    runner = runner_for(args.workers, args.dask_address)
    flow = ingest_dataset.with_options(task_runner=runner) if runner is not None else ingest_dataset
    try:
        counts = flow(catalog=args.catalog, dataset=args.dataset, force=args.force, config_path=args.config)
    except (StoreMismatchError, CatalogError, FileNotFoundError, ValueError) as exc:
        print(f"stag-ingest: error: {exc}", file=sys.stderr)
        return 2
    return 0 if counts["failed"] == 0 else 1


if __name__ == "__main__":
    sys.exit(ingest_main())
