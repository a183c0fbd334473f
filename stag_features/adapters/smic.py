"""SMIC-HS apex sheet -> SampleRecords.

``smic_apex.xlsx`` has columns data, subject, clip, label, onset_frame,
apex_frame, offset_frame (and frame paths). Labels are 0 negative, 1 positive,
2 surprise; the record's emotion is that class name, and the label must agree
with the code in the clip name (``s3_ne_05``, ``s3_po_01``, ``s3_sur_02``).
Seven clips have no offset: their offset stays None (the clip's last frame is
its end), which is not an error. Subjects become ``s<N>`` as in the raw folders
(``root/s1/micro/negative/s1_ne_01/image*.bmp`` or ``root/s20/s20_ne_01``).
SMIC-HS was recorded at 100 fps.
"""
from __future__ import annotations

from typing import Mapping

from schemas.catalog import DatasetEntry
from schemas.class_schemes import get_scheme
from schemas.sample_record import SampleRecord
from stag_features.adapters.base import AdapterResult
from stag_features.adapters.sheet_layout import SheetLayout, load_sheet
from stag_features.adapters.sheet_reading import text

SMIC_HS_FPS = 100.0  # SMIC-HS: high-speed camera at 100 fps (Li et al. 2013)
NATIVE_SCHEME = "smic-3"
SUBJECT_PREFIX = "s"
PADDED_SUBJECT_DIGITS = 2  # some raw copies name folders s01 .. s20
# clip-name code -> the native label it implies; the code is the middle part of s3_ne_05
CLIP_CODES: dict[str, str] = {"ne": "negative", "po": "positive", "sur": "surprise"}
CLIP_NAME_PARTS = 3  # subject, emotion code, number


def subject_code(value: object) -> str:
    """1, '1', 's1' or 's01' -> 's1'."""
    cell = text(value).lower().removeprefix(SUBJECT_PREFIX)
    if not cell.isdigit():
        raise ValueError(f"subject {text(value)!r} is not a subject number")
    return f"{SUBJECT_PREFIX}{int(cell)}"


def native_emotion(cells: Mapping[str, object]) -> str:
    """The class name of the row's label, checked against the emotion code in its clip name."""
    label, clip = cells["label"], text(cells["clip"])
    native = get_scheme(NATIVE_SCHEME)
    emotion = native.class_name(label)
    if emotion is None:
        raise ValueError(f"label {text(label)!r} is not one of {native.classes} (0, 1, 2)")
    parts = clip.split("_")
    code = parts[1].lower() if len(parts) >= CLIP_NAME_PARTS else None
    if code in CLIP_CODES and CLIP_CODES[code] != emotion:
        raise ValueError(f"label {text(label)} ({emotion}) disagrees with clip name {clip!r} ({CLIP_CODES[code]})")
    return emotion


def source_candidates(record: SampleRecord) -> list[tuple[str, str]]:
    """Raw folders of a clip: ``s1/s1_ne_01``, or with a zero-padded subject (``s01/s01_ne_01``, ``s01/s1_ne_01``)."""
    padded = f"{SUBJECT_PREFIX}{int(record.subject.removeprefix(SUBJECT_PREFIX)):0{PADDED_SUBJECT_DIGITS}d}"
    padded_clip = record.clip.replace(f"{record.subject}_", f"{padded}_", 1)
    return [(record.subject, record.clip), (padded, padded_clip), (padded, record.clip)]


LAYOUT = SheetLayout(
    columns={
        "subject": ("subject",),
        "clip": ("clip", "Filename"),
        "label": ("label", "emotion"),
        "onset": ("onset_frame", "onset"),
        "apex": ("apex_frame", "apex"),
        "offset": ("offset_frame", "offset"),
    },
    required=("subject", "clip", "label", "onset", "apex", "offset"),
    header_markers=("subject", "clip"),
    variant="apex",
    identity=("clip",),  # an empty subject is reported by subject_code
    fps=SMIC_HS_FPS,
    subject=subject_code,
    emotion=native_emotion,
    scheme_dataset="smic",
    source_candidates=source_candidates,
)


def load_records(entry: DatasetEntry) -> AdapterResult:
    """Records of the SMIC-HS sheet."""
    return load_sheet(entry, LAYOUT)
