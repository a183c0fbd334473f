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
from schemas.sample_record import SampleRecord
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

SAMM_FPS = 200.0  # SAMM: 2040x1088 at 200 fps (Davison et al. 2016)
COLUMNS: dict[str, tuple[str, ...]] = {
    "subject": ("Subject",),
    "clip": ("Filename",),
    "onset": ("Onset Frame", "OnsetFrame", "Onset"),
    "apex": ("Apex Frame", "ApexFrame", "Apex"),
    "offset": ("Offset Frame", "OffsetFrame", "Offset"),
    "aus": ("Action Units", "AU"),
    "emotion": ("Estimated Emotion", "Emotion"),
    "objective": ("Objective Classes", "Objective Class"),
}
REQUIRED = ("subject", "clip", "onset", "apex", "offset", "aus", "emotion")


def subject_code(value: object) -> str:
    """6, '6' or '006' -> '006'."""
    cell = text(value)
    if not cell.isdigit():
        raise ValueError(f"Subject {cell!r} is not a subject number")
    return f"{int(cell):03d}"


def load_records(entry: DatasetEntry) -> AdapterResult:
    """Records of the SAMM sheet, wherever its header row is."""
    check_options(entry)
    path = annotation_path(entry)
    raw = read_raw_table(path, sheet_option(entry))
    header = find_header_row(raw, ("Subject", "Filename", "Action Units"), path)
    columns = map_columns(raw.iloc[header].tolist(), COLUMNS, REQUIRED, path, header)
    variant = "objective-classes" if "objective" in columns else "original"
    schemes = entry_schemes(entry)
    fps = entry.fps or SAMM_FPS

    def parse_row(sheet_row: int, cells: dict[str, object]) -> SampleRecord:
        clip = text(cells["clip"])
        if not clip:
            raise ValueError("Filename is empty")
        emotion = text(cells["emotion"]).lower()
        return SampleRecord(
            dataset=entry.name,
            subject=subject_code(cells["subject"]),
            clip=clip,
            onset=required_frame(cells["onset"], "Onset Frame"),
            apex=frame(cells["apex"], "Apex Frame"),
            offset=frame(cells["offset"], "Offset Frame"),
            fps=fps,
            aus=parse_au_cell(cells["aus"]),
            emotion=emotion,
            labels=scheme_labels(schemes, emotion, "samm"),
            sheet_row=sheet_row,
        )

    return build_records(iter_rows(raw, header + 1, columns), parse_row, entry, path, variant)
