"""CAS(ME)^3 part A sheet -> SampleRecords.

``casme3_table.xlsx`` (sheet ``label``) lists micro-expressions inside long
videos: Subject (``spNO.1``), Filename (the video, ``a`` .. ``m``), Onset, Apex,
Offset, AU, Objective class, emotion. One video holds several samples, so the
clip id is ``<Filename>_<Onset>`` (``a_355``); frames are looked up under the
video's folder (``root/spNO.1/a/color/*.jpg``). The sheet writes both
'others' and 'Others': emotions are lower-cased, so they are one label.
Part A was recorded at 30 fps.
"""
from __future__ import annotations

from schemas.catalog import DatasetEntry
from schemas.sample_record import SampleRecord
from stag_features.adapters.base import AdapterResult
from stag_features.adapters.sheet_layout import SheetLayout, frame_columns, load_sheet

CASME3_FPS = 30.0  # CAS(ME)^3 part A: Intel RealSense colour stream at 30 fps (Li et al. 2022)
DEFAULT_SHEET = "label"
CLIP_ID_SEPARATOR = "_"


def clip_id(video: str, onset: int | None) -> str:
    """The id of one sample inside a video: ``a_355``."""
    return f"{video}{CLIP_ID_SEPARATOR}{onset}"


def video_of(clip: str) -> str:
    """The video a clip id belongs to: ``a_355`` -> ``a``."""
    return clip.rsplit(CLIP_ID_SEPARATOR, 1)[0]


def source_candidates(record: SampleRecord) -> list[tuple[str, str]]:
    """Frames of a sample are those of its video: ``root/<subject>/<video>``."""
    return [(record.subject, video_of(record.clip))]


LAYOUT = SheetLayout(
    columns={
        "subject": ("Subject",),
        "clip": ("Filename",),  # the video; the clip id adds the onset
        **frame_columns("{}"),
        "aus": ("AU", "Action Units"),
        "emotion": ("emotion", "Estimated Emotion"),
        "objective": ("Objective class", "Objective Classes"),
    },
    required=("subject", "clip", "onset", "apex", "offset", "aus", "emotion"),
    header_markers=("Subject", "Filename"),
    variant="part-a",
    default_sheet=DEFAULT_SHEET,
    fps=CASME3_FPS,
    clip_id=clip_id,
    scheme_dataset="casme3",
    source_candidates=source_candidates,
)


def load_records(entry: DatasetEntry) -> AdapterResult:
    """Records of the CAS(ME)^3 part A sheet."""
    return load_sheet(entry, LAYOUT)
