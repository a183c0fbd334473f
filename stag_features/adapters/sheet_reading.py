"""Reading annotation files: raw tables, header rows, column maps, and cells as values.

A sheet (or CSV) is read whole, as cells without a header, so that sheet row
numbers stay those a person sees (row i of the table is sheet row i + 1) and a
header row can sit below a block of notes. Cell readers turn one cell into a
value or raise ValueError with a reason that names the column; the adapters'
row builder turns that reason into a bad row.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Iterator, Mapping

import pandas as pd

from stag_features.adapters.au_codes import is_blank
from stag_features.adapters.base import AnnotationError

EXCEL_SUFFIXES = frozenset({".xlsx", ".xlsm", ".xls"})
CSV_SUFFIXES = frozenset({".csv", ".txt"})
# A header row sits within the first lines of a sheet (SAMM: line 14, below notes).
HEADER_SEARCH_ROWS = 60
# Cells that mean "no value" in the sheets' frame columns (CASME II writes '/').
MISSING_MARKERS = frozenset({"", "/", "-", "--", "na", "n/a", "nan", "none", "?"})


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
        except pd.errors.EmptyDataError:
            raise AnnotationError(f"annotation file {path} is empty: no header row, no data") from None
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


def header_names(row: list[object]) -> set[str]:
    """The normalised names in one table row."""
    return {normalise_header(v) for v in row}


def find_header_row(raw: pd.DataFrame, key_columns: tuple[str, ...], path: Path) -> int:
    """Index (0-based) of the first row holding every one of ``key_columns`` (normalised names)."""
    wanted = {normalise_header(c) for c in key_columns}
    for i in range(min(len(raw), HEADER_SEARCH_ROWS)):
        if wanted <= header_names(raw.iloc[i].tolist()):
            return i
    raise AnnotationError(
        f"annotation file {path}: no header row with columns {list(key_columns)} "
        f"in its first {HEADER_SEARCH_ROWS} rows"
    )


def map_columns(
    header: list[object], spec: Mapping[str, tuple[str, ...]], required: tuple[str, ...], path: Path, header_row: int
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


def iter_rows(raw: pd.DataFrame, start: int, columns: Mapping[str, int]) -> Iterator[tuple[int, dict[str, object]]]:
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


def frame_rate(value: object, column: str, default: float | None, required: bool) -> float | None:
    """A frame-rate cell as a positive number; a blank cell is ``default`` unless the column is required."""
    cell = text(value)
    if not cell and not required:
        return default
    try:
        fps = float(cell)
    except ValueError:
        raise ValueError(f"{column} {cell!r} is not a number") from None
    if fps <= 0:
        raise ValueError(f"{column} {cell!r} is not positive")
    return fps
