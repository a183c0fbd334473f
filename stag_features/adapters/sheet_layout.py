"""A dataset's annotation sheet, described as data, and the one row -> SampleRecord builder.

Every sheet adapter reads its file the same way: check the catalog options,
open the sheet, find the header row by the names it must hold, map each
record field to the column that carries it, then turn each row into a
``SampleRecord``. What differs between datasets is declared in a
``SheetLayout``: the column names each field accepts, which columns are
required, the frame-number conventions, the recording frame rate, how subject
ids become raw folder names, where the emotion label comes from, the class
scheme mapping to use, the variants and the raw folder layout. The adapter
module states its layout and any quirk its sheet has; ``load_sheet`` does the
rest.

Row fields the builder knows (the keys of ``SheetLayout.columns``):
``subject``, ``clip`` (the clip id, or with ``clip_id`` the part of it the
sheet gives), ``onset`` / ``apex`` / ``offset`` (frame numbers), ``aus`` (AU
codes), ``fps`` (a frame rate per row), ``source`` (frames of the clip,
relative to the raw root), ``dataset`` (the source dataset of each row, for a
composite); an adapter may add fields of its own for its ``emotion`` reader.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Mapping

import pandas as pd

from schemas.catalog import DatasetEntry
from schemas.sample_record import AUAnnotation, FrameSource, SampleRecord
from stag_features.adapters.au_codes import parse_au_cell
from stag_features.adapters.base import (
    COMMON_OPTIONS,
    AdapterResult,
    RowParser,
    SourceLookup,
    annotation_path,
    build_records,
    check_options,
    entry_schemes,
    scheme_labels,
    sheet_option,
)
from stag_features.adapters.sheet_reading import (
    find_header_row,
    frame,
    frame_rate,
    iter_rows,
    map_columns,
    read_raw_table,
    required_frame,
    text,
)
from stag_features.extract.frame_sources import VIDEO_SUFFIXES

FRAME_FIELDS = ("onset", "apex", "offset")
# The fields that identify a clip in most sheets: both cells must be filled.
IDENTITY_FIELDS = ("subject", "clip")
# Frame numbers a row must give; apex and offset may be missing ('/' or blank).
REQUIRED_FRAMES = ("onset",)
# How the sheets of the CASME family (CASME II, SAMM, CAS(ME)^3, DFME) name frame-number
# columns: 'OnsetFrame', 'Onset Frame' or 'Onset'; each accepts all three.
FRAME_NAME_STYLES = ("{}Frame", "{} Frame", "{}")


def frame_columns(style: str) -> dict[str, tuple[str, ...]]:
    """onset / apex / offset -> accepted header names, the sheet's own ``style`` first (named in messages)."""
    styles = (style, *(other for other in FRAME_NAME_STYLES if other != style))
    return {name: tuple(s.format(name.capitalize()) for s in styles) for name in FRAME_FIELDS}


def emotion_text(cells: Mapping[str, object]) -> str:
    """The raw emotion label of the ``emotion`` column, lower-cased ('Others' and 'others' are one label)."""
    return text(cells["emotion"]).lower()


@dataclass(frozen=True)
class SheetLayout:
    """How one dataset's annotation sheet is laid out, and how its rows become records."""

    # field -> accepted header names; the first is the sheet's own and is the name used in messages
    columns: Mapping[str, tuple[str, ...]]
    # fields whose column the header row must have
    required: tuple[str, ...]
    # header names that together mark the header row, wherever it is
    header_markers: tuple[str, ...]
    # the file's variant, and optional fields whose column, when present, names another variant
    variant: str
    variant_columns: Mapping[str, str] = field(default_factory=dict)
    # names used in row messages where a field's first header name is not the one to show (a headerless file)
    message_names: Mapping[str, str] = field(default_factory=dict)
    # fields whose cells must not be empty (checked first, named together in the reason)
    identity: tuple[str, ...] = IDENTITY_FIELDS
    # frame numbers a row must give; the other frame columns may be blank or '/'
    required_frames: tuple[str, ...] = REQUIRED_FRAMES
    # the sheet to read unless options.sheet says otherwise (None: the first)
    default_sheet: str | None = None
    # catalog options the adapter accepts
    options: frozenset[str] = COMMON_OPTIONS
    # recording frame rate when neither the catalog nor an ``fps`` column gives one
    fps: float | None = None
    # False where the records have no single rate (a composite of datasets): no fps at all
    catalog_fps: bool = True
    # subject cell -> the subject id of the raw frame folders
    subject: Callable[[object], str] = text
    # row cells -> raw emotion label; raises ValueError when the label is not valid
    emotion: Callable[[Mapping[str, object]], str] = emotion_text
    # (clip cell text, onset) -> clip id, where one sheet clip holds several samples
    clip_id: Callable[[str, int | None], str] | None = None
    # dataset key of the class schemes' per-dataset mappings (None: the schemes' common mapping)
    scheme_dataset: str | None = None
    # record -> (subject folder, clip folder) candidates under the raw root (None: its subject and clip)
    source_candidates: SourceLookup | None = None

    def column_name(self, name: str) -> str:
        """The sheet's name of a field's column, for messages."""
        return self.message_names.get(name) or self.columns.get(name, (name,))[0]

    def variant_of(self, columns: Mapping[str, int]) -> str:
        """The variant a header row shows: the first optional column present names it."""
        return next((v for name, v in self.variant_columns.items() if name in columns), self.variant)


def open_sheet(entry: DatasetEntry, layout: SheetLayout) -> tuple[Path, pd.DataFrame]:
    """The entry's annotation file and its sheet as a raw table, after checking the entry's options."""
    check_options(entry, layout.options)
    path = annotation_path(entry)
    return path, read_raw_table(path, sheet_option(entry, layout.default_sheet))


def load_sheet(entry: DatasetEntry, layout: SheetLayout) -> AdapterResult:
    """Records of a sheet laid out as ``layout`` says, with its bad rows and variant."""
    path, raw = open_sheet(entry, layout)
    header = find_header_row(raw, layout.header_markers, path)
    columns = map_columns(raw.iloc[header].tolist(), layout.columns, layout.required, path, header)
    rows = iter_rows(raw, header + 1, columns)
    parse_row = record_builder(entry, layout)
    return build_records(rows, parse_row, entry, path, layout.variant_of(columns), layout.source_candidates)


def record_builder(entry: DatasetEntry, layout: SheetLayout) -> RowParser:
    """``parse_row(sheet_row, cells)``: one SampleRecord from a row, or ValueError naming the problem."""
    schemes = entry_schemes(entry)
    default_fps = entry.fps or layout.fps

    def parse_row(sheet_row: int, cells: dict[str, object]) -> SampleRecord:
        if any(not text(cells[name]) for name in layout.identity):
            raise ValueError(f"{_either([layout.column_name(name) for name in layout.identity])} is empty")
        emotion = layout.emotion(cells)
        subject = layout.subject(cells["subject"])
        onset, apex, offset = (_frame(layout, name, cells.get(name)) for name in FRAME_FIELDS)
        clip = text(cells["clip"])
        return SampleRecord(
            dataset=text(cells["dataset"]).lower() if "dataset" in layout.columns else entry.name,
            subject=subject,
            clip=layout.clip_id(clip, onset) if layout.clip_id else clip,
            source=sheet_source(cells.get("source"), entry.root) if "source" in layout.columns else None,
            onset=onset,
            apex=apex,
            offset=offset,
            fps=_fps(layout, cells, default_fps) if layout.catalog_fps else None,
            aus=parse_au_cell(cells["aus"]) if "aus" in layout.columns else AUAnnotation(),
            emotion=emotion,
            labels=scheme_labels(schemes, emotion, layout.scheme_dataset),
            sheet_row=sheet_row,
        )

    return parse_row


def _frame(layout: SheetLayout, name: str, value: object) -> int | None:
    if name in layout.required_frames:
        return required_frame(value, layout.column_name(name))
    return frame(value, layout.column_name(name))


def _fps(layout: SheetLayout, cells: Mapping[str, object], default: float | None) -> float | None:
    """The row's own rate where the sheet has an ``fps`` column, else the catalog's or the dataset's."""
    if "fps" not in layout.columns:
        return default
    return frame_rate(cells.get("fps"), layout.column_name("fps"), default, required="fps" in layout.required)


def _either(names: list[str]) -> str:
    """'a' / 'a or b' / 'a, b or c'."""
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} or {names[-1]}"


def sheet_source(value: object, root: Path) -> FrameSource | None:
    """Frames a sheet names for a clip (relative to the raw root): a video file or a folder of images.
    A path that leaves the root once ``..`` and symbolic links are resolved (or an absolute one
    elsewhere) is a ValueError, the same rule as for the catalog's paths."""
    cell = text(value)
    if not cell or not root.is_dir():
        return None  # discovered later, or no raw data on this machine
    path = root / cell
    inside, resolved = root.resolve(), path.resolve()
    if resolved != inside and inside not in resolved.parents:
        raise ValueError(f"source {cell!r} resolves to {resolved}, outside the dataset root {inside}")
    kind = "video" if path.suffix.lower() in VIDEO_SUFFIXES else "folder"
    return FrameSource(kind=kind, path=path)
