"""DFME sheet -> SampleRecords, with a frame rate per clip.

``training_full_with_AU.xlsx``: Subject (``sub0003``), Filename
(``sub0003_01``), OnsetFrame, ApexFrame, OffsetFrame, Emotion, EmotionId, Fps
(200, 300 or 500: DFME mixes cameras), AU. Each record carries its clip's own
fps. EmotionId must agree with the Emotion's index in the ``dfme-7`` scheme;
a disagreement is a bad row. Frames: ``root/sub0003/sub0003_01/*.jpg``.
"""
from __future__ import annotations

from schemas.catalog import DatasetEntry
from schemas.class_schemes import get_scheme
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

NATIVE_SCHEME = "dfme-7"
COLUMNS: dict[str, tuple[str, ...]] = {
    "subject": ("Subject",),
    "clip": ("Filename",),
    "onset": ("OnsetFrame", "Onset Frame", "Onset"),
    "apex": ("ApexFrame", "Apex Frame", "Apex"),
    "offset": ("OffsetFrame", "Offset Frame", "Offset"),
    "emotion": ("Emotion",),
    "emotion_id": ("EmotionId", "Emotion Id"),
    "fps": ("Fps", "FPS", "Frame Rate"),
    "aus": ("AU", "Action Units"),
}
REQUIRED = ("subject", "clip", "onset", "apex", "offset", "emotion", "fps", "aus")


def _fps(value: object) -> float:
    cell = text(value)
    try:
        fps = float(cell)
    except ValueError:
        raise ValueError(f"Fps {cell!r} is not a number") from None
    if fps <= 0:
        raise ValueError(f"Fps {cell!r} is not positive")
    return fps


def _check_emotion_id(emotion: str, value: object) -> None:
    cell = text(value)
    if not cell:
        return
    expected = get_scheme(NATIVE_SCHEME).index(emotion)
    if expected is None or not cell.isdigit() or int(cell) != expected:
        raise ValueError(f"EmotionId {cell!r} disagrees with Emotion {emotion!r} (expected {expected})")


def load_records(entry: DatasetEntry) -> AdapterResult:
    """Records of a DFME sheet; every record has its clip's fps."""
    check_options(entry)
    path = annotation_path(entry)
    raw = read_raw_table(path, sheet_option(entry))
    header = find_header_row(raw, ("Subject", "Filename", "Fps"), path)
    columns = map_columns(raw.iloc[header].tolist(), COLUMNS, REQUIRED, path, header)
    schemes = entry_schemes(entry)

    def parse_row(sheet_row: int, cells: dict[str, object]) -> SampleRecord:
        subject, clip = text(cells["subject"]), text(cells["clip"])
        if not subject or not clip:
            raise ValueError("Subject or Filename is empty")
        emotion = text(cells["emotion"]).lower()
        if "emotion_id" in cells:
            _check_emotion_id(emotion, cells["emotion_id"])
        return SampleRecord(
            dataset=entry.name,
            subject=subject,
            clip=clip,
            onset=required_frame(cells["onset"], "OnsetFrame"),
            apex=frame(cells["apex"], "ApexFrame"),
            offset=frame(cells["offset"], "OffsetFrame"),
            fps=_fps(cells["fps"]),
            aus=parse_au_cell(cells["aus"]),
            emotion=emotion,
            labels=scheme_labels(schemes, emotion, "dfme"),
            sheet_row=sheet_row,
        )

    return build_records(iter_rows(raw, header + 1, columns), parse_row, entry, path, "training")
