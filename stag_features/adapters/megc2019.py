"""MEGC 2019 composite ground truth -> SampleRecords.

The official ``combined_3class_gt.csv`` has no header and four columns:
source dataset (casme2 / samm / smic), subject, clip, label (0 negative,
1 positive, 2 surprise); 442 rows, 68 subjects. Records keep the *source*
dataset in ``dataset`` (the protocol reports each part too), and the label as
``megc2019-3`` class. SAMM subjects are written 6, 7, ... and become ``006``
as in SAMM itself and in flow-image names.

Variants are recognised from the file's shape, never guessed:
- ``official``: headerless, four columns, no blank lines: read;
- ``headered``: the same data with a header row (dataset, sub, filename_o,
  label, ...), as in HTNet's copy: read;
- ``blank-lines``: the 441-row copy with ``,,,`` lines between rows (and one
  sample fewer): refused with an error that names the variant.

Option ``au_sheets`` (source dataset -> its coding sheet, e.g. CASME II's and SAMM's) gives each record
the AU codes of its clip in that sheet (``attach_sheet_aus``): the composite's own file codes none.

Options: ``flow_dir``, a folder of precomputed onset-to-apex flow images named
``<subject>_<clip> .png`` (the space is part of the name); each record must
have one, or it is reported as a bad row (``flow_image`` finds it); frames
are then not looked up. Without it, frames: ``root/<dataset>/<subject>/<clip>``
(SMIC also as ``s1/s1_ne_01``).
"""
from __future__ import annotations

from pathlib import Path
from typing import Mapping

import pandas as pd

from schemas.catalog import DatasetEntry
from schemas.class_schemes import get_scheme
from schemas.sample_record import SampleRecord
from stag_features.adapters import samm
from stag_features.adapters.au_codes import is_blank
from stag_features.adapters.base import COMMON_OPTIONS, AdapterResult, AnnotationError, BadRow, build_records
from stag_features.adapters.sheet_layout import SheetLayout, open_sheet, record_builder
from stag_features.adapters.sheet_reading import header_names, iter_rows, map_columns, text

NATIVE_SCHEME = "megc2019-3"
# The official file's columns, by position (it has no header row).
OFFICIAL_POSITIONS: dict[str, int] = {"dataset": 0, "subject": 1, "clip": 2, "label": 3}
OFFICIAL_COLUMNS = len(OFFICIAL_POSITIONS)
HEADER_ROW = 0  # the headered variant's header is its first line
# Flow-image names: "<subject>_<clip> .png" as published (HTNet), or without the space.
FLOW_IMAGE_PATTERNS: tuple[str, ...] = ("{subject}_{clip} .png", "{subject}_{clip}.png")


def subject_code(dataset: str, value: object) -> str:
    """SAMM subjects zero-padded as in SAMM (6 -> '006'); others as written."""
    cell = text(value)
    if dataset == "samm" and cell.isdigit():
        return samm.subject_code(cell)
    return cell


def native_emotion(cells: Mapping[str, object]) -> str:
    """The composite class of the row's label (0, 1 or 2)."""
    native = get_scheme(NATIVE_SCHEME)
    emotion = native.class_name(text(cells["label"]))
    if emotion is None:
        raise ValueError(f"label {text(cells['label'])!r} is not 0, 1 or 2 ({', '.join(native.classes)})")
    return emotion


def source_candidates(record: SampleRecord) -> list[tuple[str, str]]:
    """Frames under the source dataset's folder; SMIC subjects also unpadded (``smic/s1/s1_ne_01``)."""
    candidates = [(f"{record.dataset}/{record.subject}", record.clip)]
    if record.dataset == "smic" and record.subject[1:].isdigit():
        short = f"s{int(record.subject[1:])}"
        candidates.append((f"smic/{short}", record.clip.replace(record.subject, short, 1)))
    return candidates


# The headered variant's columns; the official file has the first four at OFFICIAL_POSITIONS.
LAYOUT = SheetLayout(
    columns={
        "dataset": ("dataset",),
        "subject": ("sub", "subject"),
        "clip": ("filename_o", "filename", "clip"),
        "label": ("label",),
        "apex": ("apex",),
    },
    required=("dataset", "subject", "clip", "label"),
    header_markers=("dataset", "label"),
    message_names={"subject": "subject", "clip": "clip"},  # the official file has no header to quote
    variant="official",
    identity=("dataset", "subject", "clip"),
    required_frames=(),  # the composite gives no onset or offset, and an apex only in the headered copy
    options=COMMON_OPTIONS | {"flow_dir", "phases_dir", "apex_face_dir", "composite_phases", "au_sheets"},
    catalog_fps=False,  # its source datasets were recorded at different rates
    emotion=native_emotion,
    source_candidates=source_candidates,
)


def flow_image(flow_dir: Path, record: SampleRecord) -> Path | None:
    """The precomputed flow image of a composite record, or None if it is not there."""
    for pattern in FLOW_IMAGE_PATTERNS:
        path = Path(flow_dir) / pattern.format(subject=record.subject, clip=record.clip)
        if path.is_file():
            return path
    return None


def detect_variant(raw: pd.DataFrame, path: Path) -> str:
    """'official' or 'headered'; raises AnnotationError for the blank-line variant or another shape."""
    blank = [i + 1 for i in range(len(raw)) if all(is_blank(c) for c in raw.iloc[i].tolist())]
    if blank:
        data_rows = len(raw) - len(blank)
        raise AnnotationError(
            f"annotation file {path} is the 'blank-lines' variant of the MEGC 2019 composite "
            f"({data_rows} data rows, {len(blank)} blank ',,,' lines, first at line {blank[0]}), "
            f"not the official headerless 442-row combined_3class_gt.csv; use the official file"
        )
    if len(raw) and header_names(list(LAYOUT.header_markers)) <= header_names(raw.iloc[HEADER_ROW].tolist()):
        return "headered"
    if raw.shape[1] != OFFICIAL_COLUMNS:
        raise AnnotationError(
            f"annotation file {path}: {raw.shape[1]} columns; the official composite has {OFFICIAL_COLUMNS} "
            "(dataset, subject, clip, label) and no header"
        )
    return LAYOUT.variant


def load_records(entry: DatasetEntry) -> AdapterResult:
    """Records of the MEGC 2019 composite (official or headered variant)."""
    path, raw = open_sheet(entry, LAYOUT)
    variant = detect_variant(raw, path)
    if variant == "headered":
        columns = map_columns(raw.iloc[HEADER_ROW].tolist(), LAYOUT.columns, LAYOUT.required, path, HEADER_ROW)
        first_data_row = HEADER_ROW + 1
    else:
        columns, first_data_row = OFFICIAL_POSITIONS, 0
    build_record = record_builder(entry, LAYOUT)

    def parse_row(sheet_row: int, cells: dict[str, object]) -> SampleRecord:
        dataset = text(cells["dataset"]).lower()
        return build_record(sheet_row, {**cells, "subject": subject_code(dataset, cells["subject"])})

    rows = iter_rows(raw, first_data_row, columns)
    flow_dir = entry.options.get("flow_dir")  # the flow images are the samples' inputs: frames are not looked up
    result = build_records(rows, parse_row, entry, path, variant, source_candidates, attach_sources=flow_dir is None)
    if flow_dir is not None:
        _check_flow_images(Path(str(flow_dir)), result, path)
    if entry.options.get("au_sheets"):
        result.records = attach_sheet_aus(result.records, entry)
    return result


def attach_sheet_aus(records: list[SampleRecord], entry: DatasetEntry) -> list[SampleRecord]:
    """The records with the AU codes of their source dataset's own coding sheet (option ``au_sheets``:
    source dataset -> sheet, read by that dataset's adapter, matched by subject and clip). The composite's
    file codes no AUs; a record whose dataset has no sheet, or that its sheet lacks, keeps none (its AU
    truth is stored as unknown)."""
    from stag_features.adapters import load_dataset

    sheets = entry.options["au_sheets"]
    present = sorted({r.dataset for r in records})
    if not isinstance(sheets, Mapping) or not set(sheets) <= set(present):
        raise AnnotationError(f"dataset {entry.name}: option au_sheets must map source datasets of "
                              f"{entry.annotations.name} ({', '.join(present)}) to coding sheets, got {sheets!r}")
    coded = {}
    for dataset, sheet in sheets.items():
        source = DatasetEntry(name=f"{entry.name}-{dataset}-aus", adapter=dataset, root=entry.root,
                              annotations=Path(str(sheet)), store=entry.store)
        found = {(r.subject, r.clip): r.aus for r in load_dataset(source).records}
        if not any((r.subject, r.clip) in found for r in records if r.dataset == dataset):
            raise AnnotationError(f"AU sheet {sheet} (option au_sheets.{dataset} of dataset {entry.name}) holds "
                                  f"none of the {dataset} clips of {entry.annotations.name}")
        coded.update({(dataset, *key): aus for key, aus in found.items()})
    return [r.model_copy(update={"aus": coded[(r.dataset, r.subject, r.clip)]})
            if (r.dataset, r.subject, r.clip) in coded else r for r in records]


def _check_flow_images(flow_dir: Path, result: AdapterResult, path: Path) -> None:
    if not flow_dir.is_dir():
        raise AnnotationError(f"flow_dir {flow_dir} (option of {path.name}) is not a folder")
    for record in result.records:
        if flow_image(flow_dir, record) is None:
            result.bad_rows.append(
                BadRow(path, record.sheet_row, f"no flow image {record.subject}_{record.clip} .png in {flow_dir}")
            )
