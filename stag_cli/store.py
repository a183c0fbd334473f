"""``stag store info|validate|failures|migrate PATH``: look into a feature store.

    stag store info stores/demo.zarr             # dataset, producer, config hash, sizes, counts
    stag store validate stores/demo.zarr [--deep]   # check against the store spec; exit 1 if invalid
    stag store failures stores/demo.zarr         # every recorded failure: sample, stage, time, reason
    stag store migrate stores/old.zarr           # upgrade a store written under an earlier spec
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from schemas.store_spec import BAD_ROW_PREFIX
from stag_features.store.integrity import damage
from stag_features.store.migrate import migrate_store
from stag_features.store.reader import read_metadata
from stag_features.store.validate import validate_store
from stag_features.store.writer import slot_states


def show_info(args: argparse.Namespace) -> int:
    path = Path(args.path)
    attrs = read_metadata(path).attrs
    if args.config:  # only the config, as JSON (valid YAML): stag-ingest --config accepts it
        print(json.dumps(attrs.get("pipeline_config"), indent=1, sort_keys=True))
        return 0
    states = slot_states(path)
    committed = sum(s.committed and not s.failure_stage for s in states.values())
    inconsistent = sum(s.committed and bool(s.failure_stage) for s in states.values())
    failed = sum(not s.committed and bool(s.failure_stage) and not sid.startswith(BAD_ROW_PREFIX)
                 for sid, s in states.items())
    bad_rows = sum(sid.startswith(BAD_ROW_PREFIX) for sid in states)
    pending = len(states) - committed - inconsistent - failed - bad_rows
    damaged = len(damage(path))
    layout = attrs.get("layout", {})
    print(f"store        {path}")
    print(f"dataset      {attrs.get('dataset')}   (producer {attrs.get('producer')}, schema v{attrs.get('schema_version')}, "
          f"stag {attrs.get('package_version')}, created {attrs.get('created')})")
    print(f"config hash  {attrs.get('config_hash')}")
    print(f"samples      {committed} committed, {failed} failed, {pending} pending, {bad_rows} bad sheet rows "
          f"({len(states)} slots)" + (f"; {inconsistent} committed beside a recorded failure" if inconsistent else "")
          + (f"; {damaged} damaged (stag store validate {path})" if damaged else ""))
    print(f"layout       K={layout.get('frames')} frames, {layout.get('height')}x{layout.get('width')} px, "
          f"time {layout.get('time')}, {len(attrs.get('roi_names', []))} ROIs, {len(attrs.get('au_names', []))} AUs, "
          f"{len(layout.get('edges', []))} edges")
    print(f"flow units   {attrs.get('flow_units')}")
    for scheme, classes in attrs.get("class_schemes", {}).items():
        print(f"scheme       {scheme}: {', '.join(classes)}")
    return 0


def run_validate(args: argparse.Namespace) -> int:
    report = validate_store(args.path, deep=args.deep)
    print(report.text())
    return 0 if report.ok else 1


def run_migrate(args: argparse.Namespace) -> int:
    path = Path(args.path)
    read_metadata(path)  # a clear error for a path that is no store
    lines = migrate_store(path)
    print("\n".join(lines) if lines else f"store {path}: already at the current spec; nothing to do")
    return 0


def list_failures(args: argparse.Namespace) -> int:
    states = slot_states(Path(args.path))
    failed = sorted((s.failure_time, sid, s) for sid, s in states.items() if s.failure_stage)
    if not failed:
        print(f"{args.path}: no failures recorded")
        return 0
    print(f"{args.path}: {len(failed)} failures")
    for when, sid, state in failed:
        print(f"{sid}\t{state.failure_stage}\t{when}\t{state.failure_reason}")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``stag store`` and its subcommands."""
    store = subparsers.add_parser("store", help="inspect and validate feature stores")
    commands = store.add_subparsers(dest="store_command", required=True)
    info = commands.add_parser("info", help="what a store holds")
    info.add_argument("path")
    info.add_argument("--config", action="store_true", help="print only the store's pipeline config (JSON, usable as --config)")
    info.set_defaults(handler=show_info)
    validate = commands.add_parser("validate", help="check a store against the store spec, its samples intact")
    validate.add_argument("path")
    validate.add_argument("--deep", action="store_true",
                          help="also check every chunk file's bytes against the digest recorded when it was written")
    validate.set_defaults(handler=run_validate)
    migrate = commands.add_parser("migrate", help="upgrade a store written under an earlier spec, keeping its samples")
    migrate.add_argument("path")
    migrate.set_defaults(handler=run_migrate)
    failures = commands.add_parser("failures", help="list recorded failures (sample, stage, time, reason)")
    failures.add_argument("path")
    failures.set_defaults(handler=list_failures)
