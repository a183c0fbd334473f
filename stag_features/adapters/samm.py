"""SAMM master FACS sheet -> SampleRecords.

``SAMM_Micro_FACS_Codes_v2.xlsx`` opens with a block of notes (citation, symbol
key, AU help); the header row (Subject, Filename, Onset Frame, ...) sits below
it and is found by its column names, not by its line. Subjects keep the
sheet's three-digit form (``006``), the raw folder name
(``root/006/006_1_2/006_05562.jpg``). SAMM was recorded at 200 fps.
Variant ``objective-classes`` has the 2017 'Objective Classes' column,
``original`` does not.
"""
from __future__ import annotations

from schemas.catalog import DatasetEntry
from stag_features.adapters.base import AdapterResult
from stag_features.adapters.sheet_layout import SheetLayout, frame_columns, load_sheet
from stag_features.adapters.sheet_reading import text

SAMM_FPS = 200.0  # SAMM: 2040x1088 at 200 fps (Davison et al. 2016)
SUBJECT_DIGITS = 3  # raw folders 006 .. 037


def subject_code(value: object) -> str:
    """6, '6' or '006' -> '006'."""
    cell = text(value)
    if not cell.isdigit():
        raise ValueError(f"Subject {cell!r} is not a subject number")
    return f"{int(cell):0{SUBJECT_DIGITS}d}"


LAYOUT = SheetLayout(
    columns={
        "subject": ("Subject",),
        "clip": ("Filename",),
        **frame_columns("{} Frame"),
        "aus": ("Action Units", "AU"),
        "emotion": ("Estimated Emotion", "Emotion"),
        "objective": ("Objective Classes", "Objective Class"),
    },
    required=("subject", "clip", "onset", "apex", "offset", "aus", "emotion"),
    header_markers=("Subject", "Filename", "Action Units"),
    variant="original",
    variant_columns={"objective": "objective-classes"},
    identity=("clip",),  # an empty Subject is reported by subject_code
    fps=SAMM_FPS,
    subject=subject_code,
    scheme_dataset="samm",
)


def load_records(entry: DatasetEntry) -> AdapterResult:
    """Records of the SAMM sheet, wherever its header row is."""
    return load_sheet(entry, LAYOUT)
