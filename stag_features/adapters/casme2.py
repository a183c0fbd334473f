"""CASME II coding sheet -> SampleRecords.

Two layouts are read:
- ``2014`` (CASME2-coding-20140508.xlsx): Subject, Filename, OnsetFrame,
  ApexFrame, OffsetFrame, Action Units, Estimated Emotion;
- ``objective-classes`` (later releases): the same plus an 'Objective Classes'
  column and unnamed extra columns, which are ignored.
Subjects are written '01' or 1 in the sheet and become ``sub01``, the name of
the raw frame folder (``root/sub01/EP02_01f/img46.jpg``) and of the MEGC 2019
composite. An apex written '/' is missing. The frame rate is 200 fps unless the
catalog says otherwise.
"""
from __future__ import annotations

from schemas.catalog import DatasetEntry
from schemas.sample_record import SampleRecord
from stag_features.adapters.base import (
    AdapterResult,
    annotation_path,
    build_records,
    check_options,
    entry_schemes,
    find_header_row,
    frame,
    required_frame,
    iter_rows,
    map_columns,
    read_raw_table,
    scheme_labels,
    sheet_option,
    text,
)
from stag_features.au_codes import parse_au_cell

CASME2_FPS = 200.0  # CASME II was recorded at 200 fps (Yan et al. 2014)
COLUMNS: dict[str, tuple[str, ...]] = {
    "subject": ("Subject",),
    "clip": ("Filename",),
    "onset": ("OnsetFrame", "Onset Frame", "Onset"),
    "apex": ("ApexFrame", "Apex Frame", "Apex"),
    "offset": ("OffsetFrame", "Offset Frame", "Offset"),
    "aus": ("Action Units", "AU", "AUs"),
    "emotion": ("Estimated Emotion", "Emotion"),
    "objective": ("Objective Classes", "Objective Class"),
}
REQUIRED = ("subject", "clip", "onset", "apex", "offset", "aus", "emotion")


def subject_folder(value: object) -> str:
    """'01', 1 or 'sub01' -> 'sub01'."""
    cell = text(value)
    if cell.lower().startswith("sub"):
        cell = cell[3:]
    if not cell.isdigit():
        raise ValueError(f"Subject {text(value)!r} is not a subject number")
    return f"sub{int(cell):02d}"


def load_records(entry: DatasetEntry) -> AdapterResult:
    """Records of a CASME II coding sheet (either layout)."""
    check_options(entry)
    path = annotation_path(entry)
    raw = read_raw_table(path, sheet_option(entry))
    header = find_header_row(raw, ("Subject", "Filename"), path)
    columns = map_columns(raw.iloc[header].tolist(), COLUMNS, REQUIRED, path, header)
    variant = "objective-classes" if "objective" in columns else "2014"
    schemes = entry_schemes(entry)
    fps = entry.fps or CASME2_FPS

    def parse_row(sheet_row: int, cells: dict[str, object]) -> SampleRecord:
        clip = text(cells["clip"])
        if not clip:
            raise ValueError("Filename is empty")
        emotion = text(cells["emotion"]).lower()
        return SampleRecord(
            dataset=entry.name,
            subject=subject_folder(cells["subject"]),
            clip=clip,
            onset=required_frame(cells["onset"], "OnsetFrame"),
            apex=frame(cells["apex"], "ApexFrame"),
            offset=frame(cells["offset"], "OffsetFrame"),
            fps=fps,
            aus=parse_au_cell(cells["aus"]),
            emotion=emotion,
            labels=scheme_labels(schemes, emotion, "casme2"),
            sheet_row=sheet_row,
        )

    return build_records(iter_rows(raw, header + 1, columns), parse_row, entry, path, variant)
