"""Generic annotation table -> SampleRecords, for datasets without an adapter of their own.

For 4DME, NaME or a lab's own recordings: a CSV (or an .xlsx sheet) with a
header row holding these columns (names case-insensitive; spaces and
underscores ignored):

============  ========  =========================================================
column        required  meaning
============  ========  =========================================================
subject       yes       subject id; also the folder name under the raw root
clip          yes       clip id, unique within a subject; also the folder / video stem
onset         yes       onset frame number (cells must not be empty)
apex          yes       apex frame number (cells may be empty)
offset        yes       offset frame number (cells may be empty)
emotion       yes       raw emotion label (kept lower-cased)
aus           yes       AU codes, grammar of stag_features.au_codes (cells may be empty)
source        no        frames of the clip, relative to the raw root: a folder of
                        numbered images or a video file; default: discovered
                        (``root/<subject>/<clip>/`` or ``root/<subject>/<clip>.mp4`` ...)
fps           no        the clip's frame rate; default: the catalog entry's fps
============  ========  =========================================================

Frame numbers in a video are 0-based decoding positions unless the catalog
options say ``video_frame_base: 1`` or ``time_unit: ms`` (onset/apex/offset in
milliseconds). Class labels: the entry's ``default_scheme`` and any schemes in
``options.schemes``.
"""
from __future__ import annotations

from pathlib import Path

from schemas.catalog import DatasetEntry
from schemas.sample_record import FrameSource, SampleRecord
from stag_features.adapters.base import (
    AdapterResult,
    annotation_path,
    build_records,
    check_options,
    entry_schemes,
    find_header_row,
    frame,
    iter_rows,
    map_columns,
    read_raw_table,
    required_frame,
    scheme_labels,
    sheet_option,
    text,
)
from stag_features.au_codes import parse_au_cell
from stag_features.frame_sources import VIDEO_SUFFIXES

COLUMNS: dict[str, tuple[str, ...]] = {
    "subject": ("subject",),
    "clip": ("clip",),
    "onset": ("onset",),
    "apex": ("apex",),
    "offset": ("offset",),
    "emotion": ("emotion",),
    "aus": ("aus",),
    "source": ("source",),
    "fps": ("fps",),
}
REQUIRED = ("subject", "clip", "onset", "apex", "offset", "emotion", "aus")


def _fps(value: object, default: float | None) -> float | None:
    cell = text(value)
    if not cell:
        return default
    try:
        fps = float(cell)
    except ValueError:
        raise ValueError(f"fps {cell!r} is not a number") from None
    if fps <= 0:
        raise ValueError(f"fps {cell!r} is not positive")
    return fps


def _source(value: object, root: Path) -> FrameSource | None:
    cell = text(value)
    if not cell or not root.is_dir():
        return None  # discovered later, or no raw data on this machine
    path = root / cell
    kind = "video" if path.suffix.lower() in VIDEO_SUFFIXES else "folder"
    return FrameSource(kind=kind, path=path)


def load_records(entry: DatasetEntry) -> AdapterResult:
    """Records of a generic annotation table (columns in the module docstring)."""
    check_options(entry)
    path = annotation_path(entry)
    raw = read_raw_table(path, sheet_option(entry))
    header = find_header_row(raw, ("subject", "clip"), path)
    columns = map_columns(raw.iloc[header].tolist(), COLUMNS, REQUIRED, path, header)
    schemes = entry_schemes(entry)

    def parse_row(sheet_row: int, cells: dict[str, object]) -> SampleRecord:
        subject, clip = text(cells["subject"]), text(cells["clip"])
        if not subject or not clip:
            raise ValueError("subject or clip is empty")
        emotion = text(cells["emotion"]).lower()
        return SampleRecord(
            dataset=entry.name,
            subject=subject,
            clip=clip,
            source=_source(cells.get("source"), entry.root),
            onset=required_frame(cells["onset"], "onset"),
            apex=frame(cells["apex"], "apex"),
            offset=frame(cells["offset"], "offset"),
            fps=_fps(cells.get("fps"), entry.fps),
            aus=parse_au_cell(cells["aus"]),
            emotion=emotion,
            labels=scheme_labels(schemes, emotion),
            sheet_row=sheet_row,
        )

    return build_records(iter_rows(raw, header + 1, columns), parse_row, entry, path, "generic")
