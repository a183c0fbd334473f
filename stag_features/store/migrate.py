"""Upgrade a store written under an earlier spec in place, keeping every sample that is intact.

v1 -> v2 adds ``undecodable_frames``, ``chunk_digest`` and the group array ``digested_name``. Each
committed sample's chunks are then checked the way a reader reads them (present, decodable, feature
arrays finite): an intact sample gets its digests recorded (``stag_features.store.integrity``); a
damaged one is uncommitted with its failure recorded (stage ``integrity``), so that the next ingest
recomputes it. Nothing else changes: the samples' input hashes are migrated by the next ingest,
which knows the records (``stag_features.ingest.steps``).

    lines = migrate_store("stores/casme2.zarr")    # what was done, for the terminal
"""
from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import zarr
from zarr.codecs import BloscCodec

from schemas.store_config import StoreConfig
from schemas.store_spec import (
    ARRAYS_BY_NAME,
    CHUNK_DIGEST,
    COMMITTED,
    DIGESTED_ARRAYS,
    DIGESTED_NAME,
    FAILURE_REASON,
    FAILURE_STAGE,
    FAILURE_TIME,
    FEATURE_ARRAYS,
    SAMPLE_ID,
    SCHEMA_VERSION,
    UNDECODABLE_FRAMES,
    StoreLayout,
)
from stag_features.store.integrity import chunk_digests, chunk_file
from stag_features.store.lock import store_lock
from stag_features.store.rows import blosc_whole, read_column
from stag_features.store.writer import _compressors

INTEGRITY_STAGE = "integrity"  # the failure stage of a sample found damaged (a rerun recomputes it)


def sample_problem(group: zarr.Group, path: Path, slot: int) -> str | None:
    """Why a committed slot's data cannot be read as written (a chunk missing, cut short, undecodable,
    or a feature array not finite), or None when it can."""
    for name in DIGESTED_ARRAYS:
        if name not in group:
            continue
        array = group[name]
        file = chunk_file(path, array, slot)
        if not file.is_file():
            return f"{name}: chunk file missing"
        try:
            if any(isinstance(codec, BloscCodec) for codec in array.metadata.codecs):
                blosc_whole(file.read_bytes())
            value = np.asarray(array[slot])
        except Exception as exc:  # noqa: BLE001 - any codec error says the chunk is damaged
            return f"{name}: chunk does not decode ({type(exc).__name__}: {exc})"
        if name in FEATURE_ARRAYS and not np.isfinite(value.astype(np.float32)).all():
            return f"{name}: holds NaN or infinite values"
    return None


def migrate_store(path: str | Path) -> list[str]:
    """Upgrade the store at ``path`` to the current spec (see the module docstring); [] if current."""
    path = Path(path)
    with store_lock(path, exclusive=True):
        group = zarr.open_group(str(path), mode="r+")
        version = group.attrs.get("schema_version")
        if version == SCHEMA_VERSION:
            return []
        if version != 1:
            raise ValueError(f"store {path}: schema version {version} cannot be migrated to {SCHEMA_VERSION}")
        slots = group[SAMPLE_ID].shape[0]
        compressors = _compressors(StoreConfig.model_validate(group.attrs.get("store_config", {})))
        write_all = {"write_empty_chunks": True}
        for name, shape in ((UNDECODABLE_FRAMES, (slots,)), (CHUNK_DIGEST, (slots, len(DIGESTED_ARRAYS)))):
            if name not in group:
                group.create_array(name, shape=shape, chunks=(1, *shape[1:]), dtype=str, fill_value="",
                                   dimension_names=ARRAYS_BY_NAME[name].dims, compressors=compressors)
        if DIGESTED_NAME not in group:
            names = group.create_array(DIGESTED_NAME, shape=(len(DIGESTED_ARRAYS),), chunks=(len(DIGESTED_ARRAYS),),
                                       dtype=str, fill_value="", dimension_names=ARRAYS_BY_NAME[DIGESTED_NAME].dims)
            names[:] = np.array(DIGESTED_ARRAYS, dtype=str)
        undecodable = group[UNDECODABLE_FRAMES].with_config(write_all)
        digests = group[CHUNK_DIGEST].with_config(write_all)
        committed = group[COMMITTED]
        kept, dropped = 0, []
        ids = read_column(group[SAMPLE_ID])[0]  # a damaged id reads as ''
        for slot in np.flatnonzero(np.asarray(committed[:], dtype=bool)):
            slot = int(slot)
            undecodable[slot] = ""  # v1 never skipped a frame
            problem = sample_problem(group, path, slot)
            if problem is None:
                files = {name: chunk_file(path, group[name], slot) for name in DIGESTED_ARRAYS}
                digests[slot] = chunk_digests(files)
                kept += 1
                continue
            committed[slot] = False
            when = datetime.now(timezone.utc).isoformat(timespec="seconds")
            for name, value in ((FAILURE_STAGE, INTEGRITY_STAGE), (FAILURE_REASON, problem), (FAILURE_TIME, when)):
                group[name][slot] = value
            dropped.append(f"{ids[slot] or f'slot {slot}'} ({problem})")
        StoreLayout.model_validate(group.attrs["layout"])  # still readable as a layout
        group.attrs.update({"schema_version": SCHEMA_VERSION})
    lines = [f"store {path}: migrated from spec v1 to v{SCHEMA_VERSION}: {kept} committed samples kept with "
             f"their chunk digests"]
    if dropped:
        lines.append(f"  {len(dropped)} damaged, to be recomputed by the next ingest: " + "; ".join(dropped[:10]))
    return lines
