"""``stag catalog describe``: what each catalog dataset holds, and which rows failed.

Per dataset: the annotation file and its variant, clips, subjects, how many
clips have frames on this machine, a count table per class scheme (one column
per source dataset when a dataset pools several, as the MEGC 2019 composite
does), and every bad row with its sheet row number and reason.
"""
from __future__ import annotations

import argparse
from collections import Counter
from pathlib import Path

from schemas.catalog import Catalog, DatasetEntry, load_catalog
from stag_features.adapters import AdapterResult, dataset_schemes, load_dataset

DEFAULT_CATALOG = Path("data_catalog.yaml")


def format_table(headers: list[str], rows: list[list[object]], indent: str = "    ") -> str:
    """A plain-text table: numeric columns right-aligned, text columns left-aligned."""
    cells = [headers] + [[str(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    numeric = [i > 0 and all(row[i].lstrip("-").isdigit() for row in cells[1:]) for i in range(len(headers))]

    def line(row: list[str]) -> str:
        parts = [c.rjust(w) if right else c.ljust(w) for c, w, right in zip(row, widths, numeric)]
        return indent + "  ".join(parts).rstrip()

    rule = indent + "  ".join("-" * w for w in widths)
    return "\n".join([line(cells[0]), rule, *(line(r) for r in cells[1:])])


def scheme_tables(entry: DatasetEntry, result: AdapterResult) -> list[str]:
    """One count table per class scheme present in the records, the default scheme first."""
    schemes = dataset_schemes(entry)
    present = sorted({name for r in result.records for name in r.labels}, key=lambda n: (n != entry.default_scheme, n))
    sources = sorted({r.dataset for r in result.records})
    split = len(sources) > 1
    blocks = []
    for name in present:
        classes = schemes.get(name)
        if classes is None:
            raise ValueError(f"dataset {entry.name!r}: records carry labels of scheme {name!r}, which the adapter "
                             f"does not declare (declared: {sorted(schemes)})")
        counts = Counter((r.dataset, r.labels[name]) for r in result.records if name in r.labels)
        kept = sum(counts.values())
        headers = ["class", *(sources if split else []), "clips"]
        rows = []
        for index, cls in enumerate(classes):
            per_source = [counts[(s, index)] for s in sources]
            rows.append([f"{index} {cls}", *(per_source if split else []), sum(per_source)])
        rows.append(["total", *([sum(counts[(s, i)] for i in range(len(classes))) for s in sources] if split else []), kept])
        default = " (default)" if name == entry.default_scheme else ""
        blocks.append(f"  scheme {name}{default}: keeps {kept} of {len(result.records)} clips\n" + format_table(headers, rows))
    return blocks


def describe_entry(entry: DatasetEntry, result: AdapterResult) -> str:
    """The description of one loaded dataset (see the module docstring)."""
    records = result.records
    subjects = {(r.dataset, r.subject) for r in records}
    with_frames = sum(r.source is not None for r in records)
    root_note = "" if entry.root.is_dir() else f" (raw root {entry.root} not present)"
    lines = [
        f"{entry.name}  [adapter {entry.adapter}, variant {result.variant or '-'}]",
        f"  annotations: {entry.annotations}",
        f"  store:       {entry.store}",
        f"  clips: {len(records)}   subjects: {len(subjects)}   with frames: {with_frames}{root_note}",
    ]
    emotions = Counter(r.emotion or "(none)" for r in records).most_common()
    lines.append("  emotions: " + ", ".join(f"{name} {count}" for name, count in emotions))
    lines += scheme_tables(entry, result)
    lines.append(f"  bad rows: {len(result.bad_rows)}")
    if result.bad_rows:
        rows = [[str(b.row) if b.row is not None else "-", b.file.name, b.reason] for b in result.bad_rows]
        lines.append(format_table(["row", "file", "reason"], rows))
    return "\n".join(lines)


def describe(catalog: Catalog, dataset: str | None = None) -> tuple[str, int]:
    """Text for every (or one) dataset of a catalog, and the number of datasets that failed to load."""
    names = [dataset] if dataset else catalog.names()
    blocks, failures = [f"catalog {catalog.path}: {len(catalog.names())} datasets"], 0
    for name in names:
        if name in catalog.unavailable:
            failures += 1
            blocks.append(f"{name}  [unavailable here]\n  ERROR: {catalog.unavailable[name]}")
            continue
        entry = catalog.get(name)
        try:
            result = load_dataset(entry)
        except (ValueError, FileNotFoundError) as exc:
            failures += 1
            blocks.append(f"{entry.name}  [adapter {entry.adapter}]\n  ERROR: {exc}")
            continue
        blocks.append(describe_entry(entry, result))
    return "\n\n".join(blocks), failures


def _describe_command(args: argparse.Namespace) -> int:
    text, failures = describe(load_catalog(args.catalog), args.dataset)
    print(text)
    if failures:
        print(f"\n{failures} dataset(s) could not be read (see ERROR above)")
    return 1 if failures else 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``stag catalog describe`` to the ``stag`` command."""
    catalog = subparsers.add_parser("catalog", help="inspect the datasets of a catalog")
    actions = catalog.add_subparsers(dest="catalog_command", required=True)
    describe_parser = actions.add_parser("describe", help="clips, subjects, class counts and bad rows per dataset")
    describe_parser.add_argument("--catalog", type=Path, default=DEFAULT_CATALOG, help="catalog file (default: %(default)s)")
    describe_parser.add_argument("--dataset", default=None, help="describe only this dataset")
    describe_parser.set_defaults(handler=_describe_command)
