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

SMIC_HS_FPS = 100.0  # SMIC-HS: high-speed camera at 100 fps (Li et al. 2013)
NATIVE_SCHEME = "smic-3"
# clip-name code -> the native label it implies
CLIP_CODES: dict[str, str] = {"ne": "negative", "po": "positive", "sur": "surprise"}
COLUMNS: dict[str, tuple[str, ...]] = {
    "subject": ("subject",),
    "clip": ("clip", "Filename"),
    "label": ("label", "emotion"),
    "onset": ("onset_frame", "onset"),
    "apex": ("apex_frame", "apex"),
    "offset": ("offset_frame", "offset"),
}
REQUIRED = ("subject", "clip", "label", "onset", "apex", "offset")


def subject_code(value: object) -> str:
    """1, '1', 's1' or 's01' -> 's1'."""
    cell = text(value).lower().removeprefix("s")
    if not cell.isdigit():
        raise ValueError(f"subject {text(value)!r} is not a subject number")
    return f"s{int(cell)}"


def _emotion(label: object, clip: str) -> str:
    native = get_scheme(NATIVE_SCHEME)
    emotion = native.class_name(label)
    if emotion is None:
        raise ValueError(f"label {text(label)!r} is not one of {native.classes} (0, 1, 2)")
    parts = clip.split("_")
    code = parts[1].lower() if len(parts) >= 3 else None
    if code in CLIP_CODES and CLIP_CODES[code] != emotion:
        raise ValueError(f"label {text(label)} ({emotion}) disagrees with clip name {clip!r} ({CLIP_CODES[code]})")
    return emotion


def _source_candidates(record: SampleRecord) -> list[tuple[str, str]]:
    number = int(record.subject[1:])
    padded_clip = record.clip.replace(f"{record.subject}_", f"s{number:02d}_", 1)
    return [(record.subject, record.clip), (f"s{number:02d}", padded_clip), (f"s{number:02d}", record.clip)]


def load_records(entry: DatasetEntry) -> AdapterResult:
    """Records of the SMIC-HS sheet."""
    check_options(entry)
    path = annotation_path(entry)
    raw = read_raw_table(path, sheet_option(entry))
    header = find_header_row(raw, ("subject", "clip"), path)
    columns = map_columns(raw.iloc[header].tolist(), COLUMNS, REQUIRED, path, header)
    schemes = entry_schemes(entry)
    fps = entry.fps or SMIC_HS_FPS

    def parse_row(sheet_row: int, cells: dict[str, object]) -> SampleRecord:
        clip = text(cells["clip"])
        if not clip:
            raise ValueError("clip is empty")
        emotion = _emotion(cells["label"], clip)
        return SampleRecord(
            dataset=entry.name,
            subject=subject_code(cells["subject"]),
            clip=clip,
            onset=required_frame(cells["onset"], "onset_frame"),
            apex=frame(cells["apex"], "apex_frame"),
            offset=frame(cells["offset"], "offset_frame"),
            fps=fps,
            emotion=emotion,
            labels=scheme_labels(schemes, emotion, "smic"),
            sheet_row=sheet_row,
        )

    rows = iter_rows(raw, header + 1, columns)
    return build_records(rows, parse_row, entry, path, "apex", source_lookup=_source_candidates)
