"""The feature store writer: the only module that writes Zarr.

One Zarr v3 group per dataset (layout in schemas/store_spec.md). Writing
follows four rules that make concurrent and interrupted ingests safe:

1. ``ensure_store`` creates the group, or checks that an existing one was built
   with the same dataset, schema and config (refusing otherwise, with a hint;
   the checks, read-only, are in ``stag_features.store_identity``).
2. ``allocate_slots`` gives every sample of a run a slot along ``sample``
   (existing slots are reused by sample id); resizing happens under an
   exclusive lock on the file ``<store>.lock`` beside the store folder.
3. ``write_sample`` writes one slot's chunks only (one sample per chunk), the
   ``committed`` flag false first, then every array, then ``committed`` true.
4. ``record_failure`` writes the failure (stage, reason, time) into the slot.

The lock is an fcntl lock on a local file: writers on object storage (fsspec
URLs) are not supported; see the spec for the reason.
"""
from __future__ import annotations

import shutil
from dataclasses import dataclass
from datetime import datetime, timezone
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import numpy as np
import zarr
from zarr.codecs import BloscCodec, ZstdCodec

from schemas.sample_features import SampleFeatures
from schemas.store_config import StoreConfig
from schemas.store_spec import (
    GROUP_ARRAYS,
    SAMPLE_ARRAYS,
    SCHEMA_VERSION,
    ArraySpec,
    StoreLayout,
)
from stag_features.errors import SampleError
from stag_features.store_identity import StoreIdentity, mismatch, refusal
from stag_features.store_lock import store_lock

# write every chunk, even one equal to the fill value (an all -1 au_truth, say), so
# that a committed sample has all its chunks on disk and validate can check that.
# Set per array: zarr's global config context is not thread-safe.
_WRITE_ALL_CHUNKS = {"write_empty_chunks": True}
_FILL = {"str": "", "bool": False, "uint8": 0, "int8": -1, "int16": -1, "int32": -1}


def _package_version() -> str:
    try:
        return version("stag")
    except PackageNotFoundError:
        return "unknown"


def _numpy_dtype(spec: ArraySpec, store_config: StoreConfig) -> str:
    return store_config.flow_dtype if spec.dtype == "flow" else spec.dtype


_BLOSC_CNAMES = {"blosc-zstd": "zstd", "blosc-lz4": "lz4"}  # blosc byte-shuffles each chunk, then compresses


def _compressors(store_config: StoreConfig) -> tuple:
    if store_config.compressor == "none":
        return ()
    if store_config.compressor in _BLOSC_CNAMES:
        return (BloscCodec(cname=_BLOSC_CNAMES[store_config.compressor], clevel=min(store_config.compression_level, 9)),)
    return (ZstdCodec(level=store_config.compression_level),)


def _fill_value(dtype: str):
    return _FILL.get(dtype, float("nan"))


def _create(path: Path, identity: StoreIdentity) -> None:
    layout, store_config = identity.layout, identity.store_config
    group = zarr.open_group(str(path), mode="a", zarr_format=3)
    compressors = _compressors(store_config)
    for spec in SAMPLE_ARRAYS:
        dtype = _numpy_dtype(spec, store_config)
        entry = layout.shape(spec)
        group.create_array(
            spec.name,
            shape=(0, *entry),
            chunks=(1, *(max(1, n) for n in entry)),
            dtype=dtype,
            fill_value=_fill_value(dtype),
            dimension_names=spec.dims,
            compressors=compressors,
        )
    values = {
        "roi_name": np.array(layout.roi_names, dtype=str),
        "au_name": np.array(layout.au_names, dtype=str),
        "scheme_name": np.array(list(layout.class_schemes), dtype=str),
        "edge_index": np.array(layout.edges, dtype="int32").reshape(-1, 2),
    }
    for spec in GROUP_ARRAYS:
        shape = layout.shape(spec)
        array = group.create_array(
            spec.name,
            shape=shape,
            chunks=tuple(max(1, n) for n in shape),
            dtype=spec.dtype,
            fill_value=_fill_value(spec.dtype),
            dimension_names=spec.dims,
        )
        if all(shape):
            array[...] = values[spec.name]
    group.attrs.update(
        {
            "schema_version": SCHEMA_VERSION,
            "dataset": identity.dataset,
            "producer": identity.producer,
            "pipeline_config": identity.config,
            "config_hash": identity.config_hash,
            "class_schemes": {k: list(v) for k, v in layout.class_schemes.items()},
            "roi_names": list(layout.roi_names),
            "au_names": list(layout.au_names),
            "layout": layout.model_dump(mode="json"),
            "store_config": store_config.model_dump(mode="json"),
            "flow_units": identity.flow_units,
            "package_version": _package_version(),
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        }
    )


def _clear(path: Path) -> None:
    """Remove a store's content (its lock file lies beside it and stays)."""
    for child in path.iterdir():
        if child.is_dir():
            shutil.rmtree(child)
        else:
            child.unlink()


def ensure_store(path: str | Path, identity: StoreIdentity, rebuild: bool = False) -> str:
    """Create the store at ``path``, or check that an existing one matches ``identity``.

    Returns "created", "opened" or "rebuilt". A store built with another
    dataset, schema version, config or layout raises StoreMismatchError saying
    what differs and how to proceed, unless ``rebuild`` (``--force``) is set,
    in which case its content is deleted and the store is created anew.
    """
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    with store_lock(path, exclusive=True, timeout=identity.store_config.lock_timeout_s):
        if not (path / "zarr.json").exists():
            _create(path, identity)
            return "created"
        attrs = dict(zarr.open_group(str(path), mode="r").attrs)
        problem = mismatch(attrs, identity)
        if problem is None:
            return "opened"
        if not rebuild:
            raise refusal(path, problem)
        _clear(path)
        _create(path, identity)
        return "rebuilt"


def _open(path: Path) -> zarr.Group:
    if not (path / "zarr.json").exists():
        raise FileNotFoundError(f"no feature store at {path} (create it with stag-ingest)")
    return zarr.open_group(str(path), mode="r+")


def _store_config(group: zarr.Group) -> StoreConfig:
    return StoreConfig.model_validate(group.attrs.get("store_config", {}))


def allocate_slots(path: str | Path, sample_ids: list[str], timeout: float = 120.0) -> dict[str, int]:
    """Slot index per sample id: existing slots are reused, new ones appended.

    Runs under the store's exclusive lock: reads the ids present, grows every
    per-sample array by the number of new ids, and writes those ids into their
    slots before releasing the lock, so a concurrent writer never takes them.
    """
    path = Path(path)
    if len(set(sample_ids)) != len(sample_ids):
        dupes = sorted({s for s in sample_ids if sample_ids.count(s) > 1})
        raise ValueError(f"store {path}: sample ids repeated in one run: {dupes[:5]}")
    with store_lock(path, exclusive=True, timeout=timeout):
        group = _open(path)
        id_array = group["sample_id"]
        present = {str(s): i for i, s in enumerate(id_array[:]) if s}
        new = [s for s in sample_ids if s not in present]
        if new:
            start = id_array.shape[0]
            for spec in SAMPLE_ARRAYS:
                array = group[spec.name]
                array.resize((start + len(new), *array.shape[1:]))
            id_array = group["sample_id"]
            id_array[start : start + len(new)] = np.array(new, dtype=str)
            present.update({s: start + i for i, s in enumerate(new)})
    return {s: present[s] for s in sample_ids}


def _labels_row(features: SampleFeatures, layout: StoreLayout) -> np.ndarray:
    return np.array([features.record.labels.get(name, -1) for name in layout.class_schemes], dtype="int16")


def _padded(values: np.ndarray, length: int, fill, dtype: str) -> np.ndarray:
    out = np.full(length, fill, dtype=dtype)
    out[: len(values)] = values
    return out


def sample_arrays(features: SampleFeatures, layout: StoreLayout, flow_dtype: str) -> dict[str, np.ndarray]:
    """Every per-sample array's value for one sample (except hashes, failures and the commit flag).

    Raises SampleError (stage "store") naming the array, the expected and the
    actual shape when the features do not fit the store's layout.
    """
    record, sid = features.record, features.sample_id
    n_time = len(features.frame_numbers)
    if n_time > layout.time:
        raise SampleError(sid, "store", f"{n_time} frames analysed, more than store.max_time={layout.time}; "
                          "raise store.max_time in the pipeline config (a new store)")
    optional = lambda v: -1 if v is None else int(v)  # noqa: E731
    values = {
        "subject": np.array(record.subject, dtype=str),
        "clip": np.array(record.clip, dtype=str),
        "emotion": np.array(record.emotion, dtype=str),
        "onset": np.int32(optional(record.onset)),
        "apex": np.int32(optional(record.apex)),
        "offset": np.int32(optional(record.offset)),
        "label": _labels_row(features, layout),
        "au_truth": np.asarray(features.au_truth, dtype="int8"),
        "n_time": np.int32(n_time),
        "frame_numbers": _padded(features.frame_numbers, layout.time, -1, "int32"),
        "motion_curve": _padded(features.motion_curve, layout.time, np.nan, "float32"),
        "ranked_frames": _padded(features.ranked_frames, layout.time, -1, "int32"),
        "head_motion": _padded(features.head_motion, layout.time, np.nan, "float32"),
        "apex_estimated": np.int32(features.apex_estimated),
        "apex_annotated": np.int32(features.apex_annotated),
        "selected_frames": np.asarray(features.selected_frames, dtype="int32"),
        "flow": np.asarray(features.flow).astype(flow_dtype),
        "strain": np.asarray(features.strain).astype(flow_dtype),
        "onset_face": np.asarray(features.onset_face, dtype="uint8"),
        "landmarks_onset": np.asarray(features.landmarks_onset, dtype="float32"),
        "landmarks_apex": np.asarray(features.landmarks_apex, dtype="float32"),
        "roi_boxes": np.asarray(features.roi_boxes, dtype="float32"),
        "roi_patches": np.asarray(features.roi_patches).astype(flow_dtype),
        "roi_stats": np.asarray(features.roi_stats, dtype="float32"),
        "au_activation": np.asarray(features.au_activations, dtype="float32"),
        "edge_weight": np.asarray(features.edge_weights, dtype="float32"),
    }
    by_name = {spec.name: spec for spec in SAMPLE_ARRAYS}
    for name, value in values.items():
        expected = layout.shape(by_name[name])
        if value.shape != expected:
            raise SampleError(sid, "store", f"array {name!r} has shape {value.shape}, the store expects "
                              f"{expected} (dims {by_name[name].dims[1:]}, layout {layout.dim_sizes()})")
    return values


def _check_slot(group: zarr.Group, slot: int, sample_id: str, path: Path) -> None:
    stored = str(group["sample_id"][slot])
    if stored != sample_id:
        raise ValueError(f"store {path}: slot {slot} belongs to {stored!r}, not {sample_id!r}; allocate slots first")


def write_sample(path: str | Path, slot: int, features: SampleFeatures, input_hash: str) -> None:
    """Write one sample into its slot: uncommit, arrays, provenance, commit last."""
    path = Path(path)
    with store_lock(path, exclusive=False):
        group = _open(path)
        attrs = group.attrs
        layout = StoreLayout.model_validate(attrs["layout"])
        store_config = _store_config(group)
        arrays = {spec.name: group[spec.name].with_config(_WRITE_ALL_CHUNKS) for spec in SAMPLE_ARRAYS}
    _check_slot(group, slot, features.sample_id, path)
    values = sample_arrays(features, layout, store_config.flow_dtype)
    arrays["committed"][slot] = False
    for name, value in values.items():
        arrays[name][slot] = value
    arrays["input_hash"][slot] = input_hash
    arrays["config_hash"][slot] = str(attrs["config_hash"])
    for name in ("failure_stage", "failure_reason", "failure_time"):
        arrays[name][slot] = ""
    arrays["committed"][slot] = True


def record_failure(path: str | Path, slot: int, sample_id: str, stage: str, reason: str, input_hash: str) -> None:
    """Record a failed attempt in the sample's slot; the sample is left uncommitted."""
    path = Path(path)
    with store_lock(path, exclusive=False):
        group = _open(path)
        config_hash = str(group.attrs["config_hash"])
        arrays = {name: group[name].with_config(_WRITE_ALL_CHUNKS)
                  for name in ("committed", "input_hash", "config_hash", "failure_stage", "failure_reason",
                               "failure_time")}
    _check_slot(group, slot, sample_id, path)
    arrays["committed"][slot] = False
    arrays["failure_stage"][slot] = stage
    arrays["failure_reason"][slot] = reason
    arrays["failure_time"][slot] = datetime.now(timezone.utc).isoformat(timespec="seconds")
    arrays["input_hash"][slot] = input_hash
    arrays["config_hash"][slot] = config_hash


@dataclass(frozen=True)
class SlotState:
    """What the store holds for one sample id (used for skip decisions)."""

    slot: int
    committed: bool
    input_hash: str
    config_hash: str
    failure_stage: str
    failure_reason: str
    failure_time: str


def slot_states(path: str | Path) -> dict[str, SlotState]:
    """The state of every allocated slot, by sample id."""
    path = Path(path)
    with store_lock(path, exclusive=False):
        group = zarr.open_group(str(path), mode="r")
        columns = {name: group[name][:] for name in ("sample_id", "committed", "input_hash", "config_hash",
                                                     "failure_stage", "failure_reason", "failure_time")}
    states = {}
    for i, sid in enumerate(columns["sample_id"]):
        if not sid:
            continue
        states[str(sid)] = SlotState(
            slot=i,
            committed=bool(columns["committed"][i]),
            **{k: str(columns[k][i]) for k in ("input_hash", "config_hash", "failure_stage", "failure_reason",
                                                "failure_time")},
        )
    return states
