"""The feature store: its creation, its slots and their states. With
``stag_features.store.slots`` (which writes one sample's slot), the only code
that writes Zarr.

One Zarr v3 group per dataset (layout in docs/store.md). Writing
follows four rules that make concurrent and interrupted ingests safe:

1. ``ensure_store`` creates the group, or checks that an existing one was built
   with the same dataset, schema and config (refusing otherwise, with a hint;
   the checks, read-only, are in ``stag_features.store.identity``).
2. ``allocate_slots`` gives every sample of a run a slot along ``sample``
   (existing slots are reused by sample id); resizing happens under an
   exclusive lock on the file ``<store>.lock`` beside the store folder.
3. ``store_slots.write_sample`` writes one slot's chunks only (one sample per
   chunk), the ``committed`` flag false first, then every other array, then
   ``committed`` true.
4. ``store_slots.record_failure`` writes the failure (stage, reason, time) into
   the slot.

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

from schemas.store_config import StoreConfig
from schemas.store_spec import (
    GROUP_ARRAYS,
    INPUT_IDENTITY,
    SCHEMA_VERSION,
    ArraySpec,
    StoreLayout,
)
from stag_features.store.identity import StoreIdentity, mismatch, refusal
from stag_features.store.lock import store_lock
from stag_features.store.rows import read_column

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
    for spec in layout.sample_arrays():
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
        "digested_name": np.array(layout.digested_arrays(), dtype=str),
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
            "input_identity": INPUT_IDENTITY,
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

    Returns "created", "opened", "migrated" or "rebuilt". A store written under spec v1 is
    migrated first (``stag_features.store.migrate``), keeping its samples. A store built with
    another dataset, config or layout raises StoreMismatchError saying what differs and how to
    proceed, unless ``rebuild`` (``--force``) is set, in which case its content is deleted and
    the store is created anew.
    """
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    migrated = False
    if (path / "zarr.json").exists() and not rebuild:
        from stag_features.store.migrate import migrate_store  # it uses this module's codecs

        migrated = bool(migrate_store(path))
    with store_lock(path, exclusive=True, timeout=identity.store_config.lock_timeout_s):
        if not (path / "zarr.json").exists():
            _create(path, identity)
            return "created"
        attrs = dict(zarr.open_group(str(path), mode="r").attrs)
        problem = mismatch(attrs, identity)
        if problem is None:
            return "migrated" if migrated else "opened"
        if not rebuild:
            raise refusal(path, problem)
        _clear(path)
        _create(path, identity)
        return "rebuilt"


def _open(path: Path) -> zarr.Group:
    if not (path / "zarr.json").exists():
        raise FileNotFoundError(f"no feature store at {path} (create it with stag-ingest)")
    return zarr.open_group(str(path), mode="r+")


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
        present = {str(s): i for i, s in enumerate(read_column(id_array)[0]) if s}  # a damaged id: a new slot
        new = [s for s in sample_ids if s not in present]
        if new:
            start = id_array.shape[0]
            for spec in StoreLayout.model_validate(group.attrs["layout"]).sample_arrays():
                array = group[spec.name]
                array.resize((start + len(new), *array.shape[1:]))
            id_array = group["sample_id"]
            id_array[start : start + len(new)] = np.array(new, dtype=str)
            present.update({s: start + i for i, s in enumerate(new)})
    return {s: present[s] for s in sample_ids}


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
        columns = {name: group[name][:] for name in ("committed", "input_hash", "config_hash",
                                                     "failure_stage", "failure_reason", "failure_time")}
        columns["sample_id"] = read_column(group["sample_id"])[0]  # a damaged id reads as none
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


def replace_input_hashes(path: str | Path, hashes: dict[int, str]) -> None:
    """Write new input hashes into the given slots and mark the store's hashes as content-based
    (attribute ``input_identity``): the migration of hashes an earlier version computed."""
    path = Path(path)
    with store_lock(path, exclusive=True):
        group = _open(path)
        column = group["input_hash"].with_config({"write_empty_chunks": True})
        for slot, digest in hashes.items():
            column[slot] = digest
        group.attrs.update({"input_identity": INPUT_IDENTITY})


def quarantine_damaged(path: str | Path) -> dict[int, str]:
    """Uncommit every committed slot whose chunks are damaged (``integrity.damage``, deep) or that also
    records a failure, recording stage ``integrity`` and the reason: readers stop seeing it and the next
    computation of its sample (retried like any ``integrity`` failure) replaces it, in the same slot,
    or in a new one when its sample id itself was lost. Returns {slot: reason}."""
    from stag_features.store.integrity import damage
    from stag_features.store.migrate import INTEGRITY_STAGE

    path = Path(path)
    found = damage(path, deep=True)
    with store_lock(path, exclusive=True):
        group = _open(path)
        committed = np.asarray(group["committed"][:], dtype=bool)
        stages = group["failure_stage"][:]
        found.update({int(s): "committed flag set beside a recorded failure" for s in np.flatnonzero(committed)
                      if str(stages[s])})
        when = datetime.now(timezone.utc).isoformat(timespec="seconds")
        columns = {name: group[name].with_config({"write_empty_chunks": True})
                   for name in ("committed", "failure_stage", "failure_reason", "failure_time")}
        for slot, reason in found.items():
            columns["committed"][slot] = False
            for name, value in (("failure_stage", INTEGRITY_STAGE), ("failure_reason", reason), ("failure_time", when)):
                columns[name][slot] = value
    return found
