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
from stag_features.adapters.base import AdapterResult
from stag_features.adapters.sheet_layout import SheetLayout, frame_columns, load_sheet
from stag_features.adapters.sheet_reading import text

CASME2_FPS = 200.0  # CASME II was recorded at 200 fps (Yan et al. 2014)
SUBJECT_PREFIX = "sub"
SUBJECT_DIGITS = 2  # raw folders sub01 .. sub26


def subject_folder(value: object) -> str:
    """'01', 1 or 'sub01' -> 'sub01'."""
    cell = text(value)
    if cell.lower().startswith(SUBJECT_PREFIX):
        cell = cell[len(SUBJECT_PREFIX):]
    if not cell.isdigit():
        raise ValueError(f"Subject {text(value)!r} is not a subject number")
    return f"{SUBJECT_PREFIX}{int(cell):0{SUBJECT_DIGITS}d}"


LAYOUT = SheetLayout(
    columns={
        "subject": ("Subject",),
        "clip": ("Filename",),
        **frame_columns("{}Frame"),
        "aus": ("Action Units", "AU", "AUs"),
        "emotion": ("Estimated Emotion", "Emotion"),
        "objective": ("Objective Classes", "Objective Class"),
    },
    required=("subject", "clip", "onset", "apex", "offset", "aus", "emotion"),
    header_markers=("Subject", "Filename"),
    variant="2014",
    variant_columns={"objective": "objective-classes"},
    identity=("clip",),  # an empty Subject is reported by subject_folder
    fps=CASME2_FPS,
    subject=subject_folder,
    scheme_dataset="casme2",
)


def load_records(entry: DatasetEntry) -> AdapterResult:
    """Records of a CASME II coding sheet (either layout)."""
    return load_sheet(entry, LAYOUT)
