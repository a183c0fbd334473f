"""DFME sheet -> SampleRecords, with a frame rate per clip.

``training_full_with_AU.xlsx``: Subject (``sub0003``), Filename
(``sub0003_01``), OnsetFrame, ApexFrame, OffsetFrame, Emotion, EmotionId, Fps
(200, 300 or 500: DFME mixes cameras), AU. Each record carries its clip's own
fps. EmotionId must agree with the Emotion's index in the ``dfme-7`` scheme;
a disagreement is a bad row. Frames: ``root/sub0003/sub0003_01/*.jpg``.
"""
from __future__ import annotations

from typing import Mapping

from schemas.catalog import DatasetEntry
from schemas.class_schemes import get_scheme
from stag_features.adapters.base import AdapterResult
from stag_features.adapters.sheet_layout import SheetLayout, emotion_text, frame_columns, load_sheet
from stag_features.adapters.sheet_reading import text

NATIVE_SCHEME = "dfme-7"


def checked_emotion(cells: Mapping[str, object]) -> str:
    """The Emotion cell, which must agree with the EmotionId cell where that is filled."""
    emotion = emotion_text(cells)
    cell = text(cells.get("emotion_id"))
    if not cell:
        return emotion
    expected = get_scheme(NATIVE_SCHEME).index(emotion)
    if expected is None or not cell.isdigit() or int(cell) != expected:
        raise ValueError(f"EmotionId {cell!r} disagrees with Emotion {emotion!r} (expected {expected})")
    return emotion


LAYOUT = SheetLayout(
    columns={
        "subject": ("Subject",),
        "clip": ("Filename",),
        **frame_columns("{}Frame"),
        "emotion": ("Emotion",),
        "emotion_id": ("EmotionId", "Emotion Id"),
        "fps": ("Fps", "FPS", "Frame Rate"),
        "aus": ("AU", "Action Units"),
    },
    # fps is required: every clip has its camera's rate (a blank Fps cell is a bad row)
    required=("subject", "clip", "onset", "apex", "offset", "emotion", "fps", "aus"),
    header_markers=("Subject", "Filename", "Fps"),
    variant="training",
    emotion=checked_emotion,
    scheme_dataset="dfme",
)


def load_records(entry: DatasetEntry) -> AdapterResult:
    """Records of a DFME sheet; every record has its clip's fps."""
    return load_sheet(entry, LAYOUT)
