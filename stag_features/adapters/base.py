"""What every adapter produces: results, bad rows, and records with their frames attached.

An adapter turns one annotation file into ``SampleRecord``s. Problems that
make the whole file unusable (not a spreadsheet, a missing sheet, a missing
required column, an unknown variant) raise ``AnnotationError`` naming the file.
Problems of single rows (onset after offset, a duplicate clip id, an AU cell
that does not parse, a frame number that is not a number) drop the row and
become ``BadRow``s naming the file, the 1-based row of the sheet and the
reason: nothing is dropped without a report. When the raw root exists, each
record's frames are looked up and onset / apex / offset resolved to positions;
frames that are missing or do not hold those frame numbers are reported as
bad rows too, but the record is kept (without a source, or unresolved), so
that ingestion can record the failure against the sample.

This module holds the results and the record pipeline behind every adapter;
``sheet_reading`` reads tables and cells, and ``sheet_layout`` describes a
dataset's sheet declaratively and builds its records, so that an adapter
module holds only what is specific to its dataset.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

from schemas.catalog import DatasetEntry
from schemas.class_schemes import ClassScheme, get_scheme, schemes_for
from schemas.sample_record import SampleRecord
from stag_features.errors import SampleError
from stag_features.extract.frame_sources import find_source, resolve_positions

# Options of resolve_positions for video sources (see stag_features.extract.frame_sources).
POSITION_OPTIONS = ("video_frame_base", "time_unit")
# Options every sheet adapter understands: which sheet, extra class schemes, video positions.
COMMON_OPTIONS = frozenset({"sheet", "schemes", *POSITION_OPTIONS})


class AnnotationError(ValueError):
    """An annotation file that cannot be read as a whole."""


@dataclass(frozen=True)
class BadRow:
    """A row that was not turned into a usable record, and why."""

    file: Path
    row: int | None
    reason: str

    def __str__(self) -> str:
        where = f"{self.file.name} row {self.row}" if self.row is not None else self.file.name
        return f"{where}: {self.reason}"


@dataclass
class AdapterResult:
    """Records read from one annotation file, the rows that failed, and the file's variant."""

    records: list[SampleRecord]
    bad_rows: list[BadRow] = field(default_factory=list)
    variant: str | None = None


def scheme_labels(schemes: list[ClassScheme], emotion: object, dataset: str | None = None) -> dict[str, int]:
    """Class index per scheme for one raw label (schemes that leave the label out are omitted)."""
    labels: dict[str, int] = {}
    for scheme in schemes:
        index = scheme.index(emotion, dataset)
        if index is not None:
            labels[scheme.name] = index
    return labels


def entry_schemes(entry: DatasetEntry) -> list[ClassScheme]:
    """Schemes for an entry: those that apply to its kind, plus its default scheme and options['schemes']."""
    schemes = {s.name: s for s in schemes_for(entry.adapter)}
    extra = list(entry.options.get("schemes", []) or [])  # type: ignore[arg-type]
    if entry.default_scheme:
        extra.append(entry.default_scheme)
    for name in extra:
        schemes.setdefault(name, get_scheme(name))
    return list(schemes.values())


# (sheet row, field -> cell) -> record, or ValueError with the reason
RowParser = Callable[[int, dict[str, object]], SampleRecord]
# record -> (subject folder, clip folder) names to look for under the raw root, in order of preference
SourceLookup = Callable[[SampleRecord], list[tuple[str, str]]]


def build_records(
    rows: Iterable[tuple[int, dict[str, object]]],
    parse_row: RowParser,
    entry: DatasetEntry,
    path: Path,
    variant: str | None,
    source_lookup: SourceLookup | None = None,
    attach_sources: bool = True,
) -> AdapterResult:
    """Turn rows into records: row errors and duplicate ids become bad rows, frames are attached.

    ``parse_row(sheet_row, cells)`` builds one record or raises ValueError (a
    pydantic ValidationError is one) with the reason. ``source_lookup`` gives
    the (subject folder, clip folder) names to look for under ``entry.root``,
    in order of preference; by default the record's own subject and clip.
    ``attach_sources=False`` leaves frames alone (a dataset whose inputs are not frames).
    """
    records: list[SampleRecord] = []
    bad: list[BadRow] = []
    first_row: dict[str, int] = {}
    for sheet_row, cells in rows:
        try:
            record = parse_row(sheet_row, cells)
        except ValueError as exc:
            bad.append(BadRow(path, sheet_row, _reason(exc)))
            continue
        if record.sample_id in first_row:
            bad.append(BadRow(path, sheet_row, f"duplicate clip id {record.sample_id!r} (first at row {first_row[record.sample_id]})"))
            continue
        first_row[record.sample_id] = sheet_row
        records.append(record)
    if attach_sources and entry.root.is_dir():
        records = _attach_sources(records, entry.root, path, bad, source_lookup)
        records = _resolve(records, entry, path, bad)
    return AdapterResult(records=records, bad_rows=bad, variant=variant)


def _attach_sources(
    records: list[SampleRecord],
    root: Path,
    path: Path,
    bad: list[BadRow],
    source_lookup: SourceLookup | None,
) -> list[SampleRecord]:
    attached = []
    for record in records:
        if record.source is not None:  # the sheet named it (generic CSV 'source' column)
            if not record.source.path.exists():
                bad.append(BadRow(path, record.sheet_row, f"source {record.source.path} of {record.sample_id} does not exist"))
                record = record.model_copy(update={"source": None})
            attached.append(record)
            continue
        candidates = source_lookup(record) if source_lookup else [(record.subject, record.clip)]
        source = next((s for sub, clip in candidates if (s := find_source(root, sub, clip)) is not None), None)
        if source is None:
            tried = ", ".join(f"{sub}/{clip}" for sub, clip in candidates)
            bad.append(BadRow(path, record.sheet_row, f"frames of {record.sample_id} not found under {root} (tried {tried})"))
        attached.append(record.model_copy(update={"source": source}) if source else record)
    return attached


def _resolve(records: list[SampleRecord], entry: DatasetEntry, path: Path, bad: list[BadRow]) -> list[SampleRecord]:
    """onset/apex/offset -> positions in each attached source; a failure is a bad row, the record is kept."""
    options = {k: entry.options[k] for k in POSITION_OPTIONS if k in entry.options}
    resolved = []
    for record in records:
        if record.source is None:
            resolved.append(record)
            continue
        try:
            resolved.append(resolve_positions(record, **options))  # type: ignore[arg-type]
        except (SampleError, ValueError, FileNotFoundError) as exc:
            bad.append(BadRow(path, record.sheet_row, str(exc)))
            resolved.append(record)
    return resolved


def _reason(exc: ValueError) -> str:
    errors = getattr(exc, "errors", None)
    if callable(errors):  # pydantic ValidationError: keep the messages, drop the URLs
        return "; ".join(str(e.get("msg", e)).removeprefix("Value error, ") for e in errors())
    return str(exc)


def check_options(entry: DatasetEntry, allowed: frozenset[str] = COMMON_OPTIONS) -> None:
    """Reject options the adapter does not know, naming the option."""
    unknown = sorted(set(entry.options) - allowed)
    if unknown:
        raise AnnotationError(
            f"dataset {entry.name!r}: unknown option {unknown[0]!r} for adapter {entry.adapter!r} "
            f"(allowed: {', '.join(sorted(allowed)) or 'none'})"
        )


def sheet_option(entry: DatasetEntry, default: str | None = None) -> str | int | None:
    """The sheet to read: options.sheet (a name or a 0-based position), else ``default`` (else the first)."""
    sheet = entry.options.get("sheet", default)
    if sheet is not None and not isinstance(sheet, (str, int)):
        raise AnnotationError(f"dataset {entry.name!r}: option sheet must be a sheet name or position, got {sheet!r}")
    return sheet


def annotation_path(entry: DatasetEntry) -> Path:
    """The entry's annotation file, or an error if the catalog gives none."""
    if entry.annotations is None:
        raise AnnotationError(f"dataset {entry.name!r}: adapter {entry.adapter!r} needs an annotations file")
    return entry.annotations
