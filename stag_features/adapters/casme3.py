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

CASME3_FPS = 30.0  # CAS(ME)^3 part A: Intel RealSense colour stream at 30 fps (Li et al. 2022)
DEFAULT_SHEET = "label"
COLUMNS: dict[str, tuple[str, ...]] = {
    "subject": ("Subject",),
    "video": ("Filename",),
    "onset": ("Onset", "OnsetFrame", "Onset Frame"),
    "apex": ("Apex", "ApexFrame", "Apex Frame"),
    "offset": ("Offset", "OffsetFrame", "Offset Frame"),
    "aus": ("AU", "Action Units"),
    "emotion": ("emotion", "Estimated Emotion"),
    "objective": ("Objective class", "Objective Classes"),
}
REQUIRED = ("subject", "video", "onset", "apex", "offset", "aus", "emotion")


def clip_id(video: str, onset: int) -> str:
    """The id of one sample inside a video: ``a_355``."""
    return f"{video}_{onset}"


def video_of(clip: str) -> str:
    """The video a clip id belongs to: ``a_355`` -> ``a``."""
    return clip.rsplit("_", 1)[0]


def load_records(entry: DatasetEntry) -> AdapterResult:
    """Records of the CAS(ME)^3 part A sheet."""
    check_options(entry)
    path = annotation_path(entry)
    raw = read_raw_table(path, sheet_option(entry, DEFAULT_SHEET))
    header = find_header_row(raw, ("Subject", "Filename"), path)
    columns = map_columns(raw.iloc[header].tolist(), COLUMNS, REQUIRED, path, header)
    schemes = entry_schemes(entry)
    fps = entry.fps or CASME3_FPS

    def parse_row(sheet_row: int, cells: dict[str, object]) -> SampleRecord:
        subject, video = text(cells["subject"]), text(cells["video"])
        if not subject or not video:
            raise ValueError("Subject or Filename is empty")
        onset = required_frame(cells["onset"], "Onset")
        emotion = text(cells["emotion"]).lower()
        return SampleRecord(
            dataset=entry.name,
            subject=subject,
            clip=clip_id(video, onset),
            onset=onset,
            apex=frame(cells["apex"], "Apex"),
            offset=frame(cells["offset"], "Offset"),
            fps=fps,
            aus=parse_au_cell(cells["aus"]),
            emotion=emotion,
            labels=scheme_labels(schemes, emotion, "casme3"),
            sheet_row=sheet_row,
        )

    def sources(record: SampleRecord) -> list[tuple[str, str]]:
        return [(record.subject, video_of(record.clip))]

    rows = iter_rows(raw, header + 1, columns)
    return build_records(rows, parse_row, entry, path, "part-a", source_lookup=sources)
