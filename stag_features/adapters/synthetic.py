"""The ``synthetic`` adapter: a demo dataset made by stag_features.adapters.synthetic_clips.

On first use it generates ``n_subjects`` x emotions x ``clips_per_emotion``
clips into the entry's root, laid out like a real frame-folder dataset::

    <root>/<subject>/<clip>/img001.png ...   numbered frames (PNG: lossless, byte-stable)
    <root>/annotations.csv                   Subject, Filename, OnsetFrame, ApexFrame,
                                             OffsetFrame, Action Units, Estimated Emotion
    <root>/generation.json                   the generator's parameters

and then reads the sheet back like any adapter. Generation is deterministic
(``seed``) and is redone only when the parameters in generation.json differ.
Labels: the class scheme ``demo`` whose classes are the generator's emotions.

Options (all optional): ``n_subjects`` (4), ``clips_per_emotion`` (1),
``seed`` (0), ``synthetic`` (SyntheticConfig overrides), ``pipeline``
(PipelineConfig overrides used by ingestion; see flows/ingest.py).
"""
from __future__ import annotations

import csv
import fcntl
import json
import shutil
from pathlib import Path

from schemas.catalog import DatasetEntry
from schemas.sample_record import FrameSource, SampleRecord
from schemas.synthetic_config import SyntheticConfig
from stag_features.adapters.au_codes import parse_au_cell
from stag_features.adapters.base import AdapterResult, AnnotationError, BadRow

SCHEME = "demo"
SHEET_NAME = "annotations.csv"
STAMP_NAME = "generation.json"
FRAME_NAME = "img{number:03d}.png"  # frame numbers count from 1, as in most sheets
SHEET_COLUMNS = ("Subject", "Filename", "OnsetFrame", "ApexFrame", "OffsetFrame", "Action Units", "Estimated Emotion")
DEFAULTS = {"n_subjects": 4, "clips_per_emotion": 1, "seed": 0}
OPTIONS = frozenset({*DEFAULTS, "synthetic", "pipeline"})


def _parameters(entry: DatasetEntry) -> dict:
    unknown = sorted(set(entry.options) - OPTIONS)
    if unknown:
        raise AnnotationError(f"dataset {entry.name!r}: unknown option {unknown[0]!r} for adapter 'synthetic' "
                              f"(allowed: {', '.join(sorted(OPTIONS))})")
    config = SyntheticConfig.model_validate(entry.options.get("synthetic") or {})
    params = {key: int(entry.options.get(key, default)) for key, default in DEFAULTS.items()}
    return {**params, "synthetic": config.model_dump(mode="json")}


def class_schemes(entry: DatasetEntry) -> dict[str, tuple[str, ...]]:
    """The ``demo`` scheme: the generator's emotions, in its order."""
    config = SyntheticConfig.model_validate(entry.options.get("synthetic") or {})
    return {SCHEME: tuple(config.emotions)}


def generate(root: Path, params: dict) -> None:
    """Write frames, sheet and stamp into ``root`` (replacing what was there)."""
    import cv2  # here, not at the top: a rerun reads the sheet only, and OpenCV's import is 50 ms of it

    from stag_features.adapters.synthetic_clips import make_dataset

    if root.exists():
        shutil.rmtree(root)
    root.mkdir(parents=True)
    clips = make_dataset(params["n_subjects"], params["clips_per_emotion"], params["seed"],
                         SyntheticConfig.model_validate(params["synthetic"]))
    rows = []
    for clip in clips:
        folder = root / clip.subject / clip.clip
        folder.mkdir(parents=True)
        for position, frame in enumerate(clip.frames):
            cv2.imwrite(str(folder / FRAME_NAME.format(number=position + 1)), frame)
        rows.append((clip.subject, clip.clip, clip.onset + 1, clip.apex + 1, clip.offset + 1,
                     "+".join(str(au) for au in clip.aus), clip.emotion))
    with (root / SHEET_NAME).open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(SHEET_COLUMNS)
        writer.writerows(rows)
    (root / STAMP_NAME).write_text(json.dumps(params, sort_keys=True, indent=1))  # written last: marks completion


def ensure_generated(root: Path, params: dict) -> None:
    """Generate unless ``root`` already holds a complete dataset made with ``params``.

    A lock file beside the root serialises concurrent first uses."""
    root.parent.mkdir(parents=True, exist_ok=True)
    with open(root.with_name(root.name + ".generate.lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        stamp = root / STAMP_NAME
        if stamp.is_file() and json.loads(stamp.read_text()) == params:
            return
        generate(root, params)


def load_records(entry: DatasetEntry) -> AdapterResult:
    """Records of the synthetic dataset (generated first if needed), labelled under ``demo``."""
    params = _parameters(entry)
    ensure_generated(entry.root, params)
    sheet = entry.annotations or entry.root / SHEET_NAME
    classes = list(class_schemes(entry)[SCHEME])
    records: list[SampleRecord] = []
    bad: list[BadRow] = []
    with sheet.open(newline="") as handle:
        for row_number, row in enumerate(csv.DictReader(handle), start=2):
            try:
                onset, apex, offset = (int(row[c]) for c in ("OnsetFrame", "ApexFrame", "OffsetFrame"))
                folder = entry.root / row["Subject"] / row["Filename"]
                emotion = row["Estimated Emotion"]
                records.append(SampleRecord(
                    dataset=entry.name, subject=row["Subject"], clip=row["Filename"],
                    source=FrameSource(kind="folder", path=folder) if folder.is_dir() else None,
                    onset=onset, apex=apex, offset=offset,
                    onset_index=onset - 1, apex_index=apex - 1, offset_index=offset - 1,
                    fps=entry.fps, aus=parse_au_cell(row["Action Units"]), emotion=emotion,
                    labels={SCHEME: classes.index(emotion)} if emotion in classes else {},
                    sheet_row=row_number,
                ))
            except (KeyError, ValueError) as exc:
                bad.append(BadRow(sheet, row_number, f"{type(exc).__name__}: {exc}"))
    return AdapterResult(records=records, bad_rows=bad, variant="synthetic")
