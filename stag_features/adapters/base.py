"""What every adapter shares: results, bad rows, reading sheets, building records.

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
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

import pandas as pd

from schemas.catalog import DatasetEntry
from schemas.class_schemes import ClassScheme, get_scheme, schemes_for
from schemas.sample_record import SampleRecord
from stag_features.au_codes import is_blank
from stag_features.errors import SampleError
from stag_features.frame_sources import find_source, resolve_positions

EXCEL_SUFFIXES = frozenset({".xlsx", ".xlsm", ".xls"})
CSV_SUFFIXES = frozenset({".csv", ".txt"})
# A header row sits within the first lines of a sheet (SAMM: line 14, below notes).
HEADER_SEARCH_ROWS = 60
# Cells that mean "no value" in the sheets' frame columns (CASME II writes '/').
MISSING_MARKERS = frozenset({"", "/", "-", "--", "na", "n/a", "nan", "none", "?"})
# Options of resolve_positions for video sources (see stag_features.frame_sources).
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


def normalise_header(value: object) -> str:
    """'Onset Frame', 'onset_frame', 'OnsetFrame ' -> 'onsetframe'."""
    return re.sub(r"[\s_\-]+", "", str(value)).lower() if not is_blank(value) else ""


def read_raw_table(path: Path, sheet: str | int | None = None) -> pd.DataFrame:
    """The whole sheet (or CSV) as text cells, no header; row i is sheet row i + 1.

    Raises AnnotationError naming the file if it is missing, not a spreadsheet,
    or lacks the sheet (listing the sheets it has).
    """
    path = Path(path)
    if not path.is_file():
        raise AnnotationError(f"annotation file {path} does not exist")
    suffix = path.suffix.lower()
    if suffix in CSV_SUFFIXES:
        try:
            return pd.read_csv(path, header=None, dtype=str, skip_blank_lines=False, keep_default_na=False)
        except (pd.errors.ParserError, UnicodeDecodeError) as exc:
            raise AnnotationError(f"annotation file {path} is not a readable CSV: {exc}") from exc
    if suffix not in EXCEL_SUFFIXES:
        raise AnnotationError(f"annotation file {path} is not a spreadsheet (expected {sorted(EXCEL_SUFFIXES | CSV_SUFFIXES)})")
    try:
        book = pd.ExcelFile(path)
    except Exception as exc:  # openpyxl/xlrd raise many types for a file that is not a workbook
        raise AnnotationError(f"annotation file {path} is not a spreadsheet: {type(exc).__name__}: {exc}") from exc
    with book:
        if sheet is None:
            sheet = book.sheet_names[0]
        elif (isinstance(sheet, str) and sheet not in book.sheet_names) or (
            isinstance(sheet, int) and not 0 <= sheet < len(book.sheet_names)
        ):
            raise AnnotationError(f"annotation file {path} has no sheet {sheet!r}; it has {book.sheet_names}")
        return pd.read_excel(book, sheet_name=sheet, header=None, dtype=object)


def find_header_row(raw: pd.DataFrame, key_columns: tuple[str, ...], path: Path) -> int:
    """Index (0-based) of the first row holding every one of ``key_columns`` (normalised names)."""
    wanted = {normalise_header(c) for c in key_columns}
    for i in range(min(len(raw), HEADER_SEARCH_ROWS)):
        found = {normalise_header(v) for v in raw.iloc[i].tolist()}
        if wanted <= found:
            return i
    raise AnnotationError(
        f"annotation file {path}: no header row with columns {list(key_columns)} "
        f"in its first {HEADER_SEARCH_ROWS} rows"
    )


def map_columns(
    header: list[object], spec: dict[str, tuple[str, ...]], required: tuple[str, ...], path: Path, header_row: int
) -> dict[str, int]:
    """field -> column position, from a header row and each field's accepted names."""
    positions = {normalise_header(v): i for i, v in reversed(list(enumerate(header))) if not is_blank(v)}
    found: dict[str, int] = {}
    for name, aliases in spec.items():
        for alias in aliases:
            if normalise_header(alias) in positions:
                found[name] = positions[normalise_header(alias)]
                break
    missing = [name for name in required if name not in found]
    if missing:
        names = [str(v) for v in header if not is_blank(v)]
        raise AnnotationError(
            f"annotation file {path}: header row {header_row + 1} lacks required column "
            f"{spec[missing[0]][0]!r} (accepted names: {list(spec[missing[0]])}); columns present: {names}"
        )
    return found


def iter_rows(raw: pd.DataFrame, start: int, columns: dict[str, int]) -> Iterator[tuple[int, dict[str, object]]]:
    """(1-based sheet row, field -> cell) for each non-blank row from ``start`` (0-based)."""
    for i in range(start, len(raw)):
        cells = raw.iloc[i].tolist()
        if all(is_blank(c) for c in cells):
            continue
        yield i + 1, {name: cells[pos] if pos < len(cells) else None for name, pos in columns.items()}


def text(value: object) -> str:
    """A cell as trimmed text: 12.0 -> '12', blank -> ''."""
    if is_blank(value):
        return ""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value).strip()


def frame(value: object, column: str) -> int | None:
    """A frame-number cell as int; blank and markers such as '/' are None; otherwise ValueError."""
    cell = text(value)
    if cell.lower() in MISSING_MARKERS:
        return None
    try:
        number = float(cell)
    except ValueError:
        raise ValueError(f"{column} {cell!r} is not a frame number") from None
    if not number.is_integer() or number < 0:
        raise ValueError(f"{column} {cell!r} is not a non-negative whole frame number")
    return int(number)


def required_frame(value: object, column: str) -> int:
    """A frame-number cell that must be present."""
    number = frame(value, column)
    if number is None:
        raise ValueError(f"{column} is empty")
    return number


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


RowParser = Callable[[int, dict[str, object]], SampleRecord]


def build_records(
    rows: Iterator[tuple[int, dict[str, object]]],
    parse_row: RowParser,
    entry: DatasetEntry,
    path: Path,
    variant: str | None,
    source_lookup: Callable[[SampleRecord], list[tuple[str, str]]] | None = None,
) -> AdapterResult:
    """Turn rows into records: row errors and duplicate ids become bad rows, frames are attached.

    ``parse_row(sheet_row, cells)`` builds one record or raises ValueError (a
    pydantic ValidationError is one) with the reason. ``source_lookup`` gives
    the (subject folder, clip folder) names to look for under ``entry.root``,
    in order of preference; by default the record's own subject and clip.
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
    if entry.root.is_dir():
        records = _attach_sources(records, entry.root, path, bad, source_lookup)
        records = _resolve(records, entry, path, bad)
    return AdapterResult(records=records, bad_rows=bad, variant=variant)


def _attach_sources(
    records: list[SampleRecord],
    root: Path,
    path: Path,
    bad: list[BadRow],
    source_lookup: Callable[[SampleRecord], list[tuple[str, str]]] | None,
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
