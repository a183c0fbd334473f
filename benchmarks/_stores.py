"""Stores the loader, training and codec benchmarks read, built with the real writer.

- ``composite_store()``: the MEGC 2019 composite (442 samples, K = 1, 28 x 28),
  ingested from its flow images (the flow-image producer, ``ingest_in_process``)
  into the scratch folder (once; a rerun skips every sample).
- ``replicated_store()``: a pipeline-shaped store of N samples for read
  benchmarks. A few demo clips (``extract_demo_features``) or real video clips
  (``extract_real_features``) are run through ``extract_sample`` with the
  given PipelineConfig (the default: K = 8 selected frames, 224 px flow), and
  their real features are committed N times under distinct sample ids by
  ``write_sample`` (subjects s00.., labels cycling over 3 classes of scheme
  ``bench``). The bytes read per sample are those of real features; only their
  variety is limited to the clips extracted.
"""
from __future__ import annotations

import dataclasses
import time
from pathlib import Path

from benchmarks._common import SCRATCH_BASE, SHARED_DATA
from benchmarks._inputs import DEMO_DEFAULTS, write_bench_catalog

BENCH_SCHEME = "bench"
BENCH_CLASSES = ("a", "b", "c")


# the AU coding sheets of the composite's source datasets that code AUs (the megc2019 adapter's au_sheets)
AU_SHEETS = {"casme2": "annotations/casme2/CASME2-coding-20140508.xlsx",
             "samm": "annotations/samm/SAMM_Micro_FACS_Codes_v2.xlsx"}


def composite_store(folder: Path | None = None, name: str = "megc2019", phases: dict | None = None,
                    au_sheets: bool = False) -> tuple[Path, float]:
    """The composite store ``<name>.zarr`` in ``folder`` (default SCRATCH_BASE): (path, seconds the ingest took).
    ``phases``: a CompositePhasesConfig as a dict: the two-phase store with real faces (issue 24) instead of
    the K = 1 flow-image import. ``au_sheets``: ground-truth AUs of the CASME II and SAMM samples from
    their coding sheets (``AU_SHEETS``)."""
    from schemas.catalog import DatasetEntry
    from schemas.pipeline_config import PipelineConfig
    from stag_features.ingest.producers import producer_for
    from stag_features.ingest.steps import ingest_in_process
    from stag_features.store.identity import StoreMismatchError

    folder = folder or SCRATCH_BASE
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.zarr"
    options: dict[str, object] = {"flow_dir": str(SHARED_DATA / "megc2019_flow")}
    if au_sheets:
        options["au_sheets"] = {dataset: str(SHARED_DATA / sheet) for dataset, sheet in AU_SHEETS.items()}
    if phases is not None:
        options.update(phases_dir=str(SHARED_DATA / "megc2019_flow_phases"), composite_phases=phases,
                       apex_face_dir=str(SHARED_DATA / "megc2019_apex_faces"))
    entry = DatasetEntry(name=name, adapter="megc2019", root=folder / "no-frames",
                         annotations=SHARED_DATA / "annotations/megc2019/combined_3class_gt.csv", store=str(path),
                         options=options)
    producer = producer_for(entry, PipelineConfig())
    started = time.perf_counter()
    try:
        summary = ingest_in_process(entry, producer)
    except StoreMismatchError:  # the config changed since: rebuild
        started = time.perf_counter()
        summary = ingest_in_process(entry, producer, force=True)
    if summary.failures():
        raise RuntimeError(f"composite ingest failed:\n{summary.table()}")
    return path, time.perf_counter() - started


def extract_demo_features(config_overrides: dict, n_clips: int, folder: Path):
    """Features of the first ``n_clips`` demo clips under a PipelineConfig with ``config_overrides``."""
    from schemas.catalog import load_catalog
    from stag_features.adapters import load_dataset

    catalog = write_bench_catalog(folder, demo={**DEMO_DEFAULTS, "n_subjects": 1, "clips_per_emotion": 1})
    return _extract(load_dataset(load_catalog(catalog).get("demo")).records[:n_clips], config_overrides)


def extract_real_features(config_overrides: dict, clip_names: list[str]):
    """Features of real clips (benchmarks._inputs.REAL_CLIPS names) under a PipelineConfig with ``config_overrides``."""
    from benchmarks._inputs import resolve_clip

    return _extract([resolve_clip(name).record() for name in clip_names], config_overrides)


def _extract(records: list, config_overrides: dict):
    """(config, features of every record), one landmark backend for all."""
    from schemas.pipeline_config import PipelineConfig
    from stag_features.extract.face import make_backend
    from stag_features.extract.sample_pipeline import extract_sample

    config = PipelineConfig.model_validate(config_overrides)
    backend = make_backend(config.face)
    return config, [extract_sample(r, config, backend=backend) for r in records]


def replicated_store(path: Path, config, features: list, n_samples: int, n_subjects: int = 16) -> Path:
    """Commit ``n_samples`` copies of ``features`` (cycled) into a fresh store at ``path``."""
    import shutil

    from benchmarks.ingest_stages import _store_for
    from stag_features.store.slots import write_sample
    from stag_features.store.writer import allocate_slots

    shutil.rmtree(path, ignore_errors=True)
    store = _store_for(path, config, {BENCH_SCHEME: BENCH_CLASSES})
    copies = []
    for i in range(n_samples):
        base = features[i % len(features)]
        record = base.record.model_copy(update={"subject": f"s{i % n_subjects:02d}", "clip": f"c{i:05d}",
                                                "labels": {BENCH_SCHEME: i % len(BENCH_CLASSES)}})
        copies.append(dataclasses.replace(base, record=record))
    slots = allocate_slots(store, [f.sample_id for f in copies])
    for f in copies:
        write_sample(store, slots[f.sample_id], f, f.input_hash)
    return path


def store_differences(store: Path, reference: Path) -> list[str]:
    """Per-sample arrays whose committed samples differ between two stores, compared bit for bit
    (NaN equal to NaN); empty when the committed views are equal. Failure fields are not compared."""
    import numpy as np

    from schemas.store_spec import SAMPLE_ARRAYS
    from stag_features.store.query import open_store

    ds, ref = open_store(store), open_store(reference)
    ids, ref_ids = set(ds["sample"].values.tolist()), set(ref["sample"].values.tolist())
    if ids != ref_ids:
        return [f"samples differ: {sorted(ids ^ ref_ids)}"]
    ds = ds.sel(sample=ref["sample"].values)
    differ = []
    for spec in SAMPLE_ARRAYS:
        if spec.name not in ref.variables or spec.name == "failure_time":
            continue
        a, b = np.asarray(ds[spec.name].values), np.asarray(ref[spec.name].values)
        same = np.array_equal(a, b, equal_nan=True) if a.dtype.kind == "f" else a.tolist() == b.tolist()
        if not same:
            differ.append(spec.name)
    return differ
