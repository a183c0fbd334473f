"""A store's samples as MEGC 2019 flow images (``stag export flow-images --format megc2019``).

One PNG per committed sample labelled under the chosen class scheme, in the convention of
schemas/megc2019_image.py: 28 x 28, R, G, B = u, v, strain, 8 bits, named ``<subject>_<clip> .png``,
plus the index CSV HTNet reads. Per sample, from the store's float arrays:

- composite stores (``producer = composite_import``: the images were imported as
  u, v = channel / 255 - c and strain = channel / 255) invert the import exactly:
      u_img = round(255 (u + c)),  v_img = round(255 (v + c)),  strain_img = round(255 strain)
  so re-importing the files gives the store's arrays back to 8-bit resolution;
- other stores (flow in pixels): the selected frame of largest mean flow magnitude (the estimated
  apex, as STSTNet picks it) is area-resized to 28 x 28 (`area_resize`, the average over each output
  cell's input rows and columns, as ``torch.nn.functional.interpolate(mode="area")``), and each channel
  is min-max normalised over the image to 0..255 and rounded (`minmax_image`), as the MEGC producers
  normalised theirs.

Reads through `stag_features.store.StoreReader`; writes with OpenCV (which stores B, G, R, so the
arrays are handed over as (strain, v, u)).
"""
from __future__ import annotations

import csv
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from schemas.megc2019_image import FILE_NAME, IMAGE_SIZE, INDEX_COLUMNS, INDEX_FILE, LEVELS
from schemas.store_spec import APEX, CLIP, FLOW, SOURCE_DATASET, STRAIN, SUBJECT
from stag_features.store import StoreReader

FORMATS = ("megc2019",)
COMPOSITE_PRODUCER = "composite_import"
BATCH = 64  # samples read from the store at a time


class ExportError(ValueError):
    """An export that cannot be done as asked; the message names the input."""


def area_resize(field: np.ndarray, size: int) -> np.ndarray:
    """(H, W) -> (size, size) float32: output cell (i, j) is the mean of input rows floor(i H / size) ..
    ceil((i + 1) H / size) - 1 and the columns likewise (adaptive average pooling)."""
    h, w = field.shape
    if (h, w) == (size, size):
        return field.astype(np.float32)
    rows = [(i * h // size, -(-(i + 1) * h // size)) for i in range(size)]
    cols = [(j * w // size, -(-(j + 1) * w // size)) for j in range(size)]
    x = field.astype(np.float32)
    return np.array([[x[r0:r1, c0:c1].mean() for c0, c1 in cols] for r0, r1 in rows], dtype=np.float32)


def minmax_image(u: np.ndarray, v: np.ndarray, strain: np.ndarray) -> np.ndarray:
    """(S, S, 3) uint8 in OpenCV order (strain, v, u): each channel round(255 (x - min) / (max - min)), 0 if flat."""
    channels = []
    for x in (strain, v, u):
        x = x.astype(np.float32)
        low, span = x.min(), x.max() - x.min()
        channels.append(np.rint((x - low) / span * np.float32(LEVELS)) if span > 0 else np.zeros_like(x))
    return np.stack(channels, -1).astype(np.uint8)


def composite_image(u: np.ndarray, v: np.ndarray, strain: np.ndarray, uv_centre: float) -> np.ndarray:
    """(S, S, 3) uint8 in OpenCV order (strain, v, u): the composite import inverted,
    round(255 (u + c)), round(255 (v + c)), round(255 strain), clipped to 0..255."""
    values = [strain, v + uv_centre, u + uv_centre]
    return np.stack([np.clip(np.rint(x.astype(np.float32) * LEVELS), 0, LEVELS) for x in values], -1).astype(np.uint8)


def apex_frame(flow: np.ndarray) -> int:
    """Index of the frame of largest mean flow magnitude; flow (K, 2, H, W)."""
    return int(np.argmax(np.sqrt((flow.astype(np.float32) ** 2).sum(1)).mean((-2, -1))))


@dataclass(frozen=True)
class ExportSummary:
    store: Path
    out: Path
    scheme: str
    written: int
    excluded: int  # committed samples without a class in the scheme
    conversion: str
    seconds: float

    def text(self) -> str:
        return (f"wrote {self.written} flow images (MEGC 2019 convention, {IMAGE_SIZE} x {IMAGE_SIZE}) and "
                f"{INDEX_FILE} to {self.out} in {self.seconds:.1f} s; {self.conversion}; scheme {self.scheme!r}"
                + (f", {self.excluded} committed samples outside it not exported" if self.excluded else ""))


def _scheme(reader: StoreReader, scheme: str | None) -> str:
    schemes = sorted(reader.metadata.class_schemes)
    if scheme is None:
        if len(schemes) != 1:
            raise ExportError(f"store {reader.path} has the class schemes {schemes}; choose one with --scheme")
        return schemes[0]
    if scheme not in schemes:
        raise ExportError(f"store {reader.path} has no class scheme {scheme!r}; it has {schemes}")
    return scheme


def _uv_centre(reader: StoreReader) -> float:
    config = reader.metadata.attrs.get("pipeline_config", {})
    try:
        return float(config["composite_import"]["uv_centre"])
    except (KeyError, TypeError, ValueError):
        raise ExportError(f"store {reader.path} is a composite import but records no composite_import.uv_centre "
                          "in its pipeline_config; it cannot be inverted") from None


def export_flow_images(store: Path, out: Path, fmt: str = "megc2019", scheme: str | None = None,
                       overwrite: bool = False, progress: Callable[[str], None] | None = None) -> ExportSummary:
    """Write every committed sample of ``store`` labelled under ``scheme`` as a flow image into ``out``."""
    started = time.perf_counter()
    if fmt not in FORMATS:
        raise ExportError(f"unknown image format {fmt!r}; choose one of {list(FORMATS)}")
    reader = StoreReader(store)
    scheme = _scheme(reader, scheme)
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ExportError(f"output {out} exists and is not a folder")
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise ExportError(f"output folder {out} is not empty; pass --overwrite to write into it")
    out.mkdir(parents=True, exist_ok=True)
    slots, labels = reader.labelled(scheme)
    excluded = len(reader.committed()) - len(slots)
    subjects, clips, apexes = reader.column(SUBJECT, slots), reader.column(CLIP, slots), reader.column(APEX, slots)
    names = [FILE_NAME.format(subject=s, clip=c) for s, c in zip(subjects, clips)]
    bad = [n for n in names if "/" in n or "\\" in n]
    if bad:
        raise ExportError(f"store {reader.path}: sample names with a path separator cannot be file names: {bad[:3]}")
    composite = reader.metadata.producer == COMPOSITE_PRODUCER
    centre = _uv_centre(reader) if composite else 0.0
    import cv2  # OpenCV writes the PNGs

    for start in range(0, len(slots), BATCH):
        part = slots[start:start + BATCH]
        flows, strains = reader.read(FLOW, part), reader.read(STRAIN, part)  # (n, K, 2, H, W), (n, K, H, W)
        for i, (flow, strain) in enumerate(zip(flows, strains)):
            k = 0 if composite else apex_frame(flow)
            u, v, s = (area_resize(x, IMAGE_SIZE) for x in (flow[k, 0], flow[k, 1], strain[k]))
            if composite:
                image = composite_image(u, v, s, centre)
            else:
                image = minmax_image(u, v, s)
            if not cv2.imwrite(str(out / names[start + i]), image):
                raise ExportError(f"could not write {out / names[start + i]}")
        if progress:
            progress(f"  {min(start + BATCH, len(slots))}/{len(slots)} images")
    classes = reader.metadata.class_schemes[scheme]
    datasets = ([str(d) for d in reader.column(SOURCE_DATASET, slots).tolist()]
                if SOURCE_DATASET in reader.metadata.layout.extra_arrays else [reader.metadata.dataset] * len(slots))
    with (out / INDEX_FILE).open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow([*INDEX_COLUMNS, "flow_image", "class"])
        rows = zip(datasets, subjects, clips, labels.tolist(), apexes.tolist(), names)
        for dataset, subject, clip, label, apex, name in rows:
            row = {"dataset": dataset, "sub": subject, "filename_o": clip, "label": label,
                   "apex": apex if apex >= 0 else "", "imagename": "", "sub_filename": ""}
            writer.writerow([*(row[c] for c in INDEX_COLUMNS), name, classes[label]])
    conversion = ("composite import inverted exactly (u, v = 255 (x + {c}), strain = 255 x)".format(c=centre)
                  if composite else "apex frame, area-resized, each channel min-max normalised to 0..255")
    return ExportSummary(reader.path, out, scheme, len(slots), excluded, conversion, time.perf_counter() - started)
