"""Integrity of committed samples: the digests a slot records, and checks that find damage.

When a sample is written (``stag_features.store.slots``), every chunk file of its digested arrays
(``schemas.store_spec.DIGESTED_ARRAYS``: all but provenance, failures, the digests and the flag)
is read back and recorded in its ``chunk_digest`` row as ``<bytes>:<sha256>`` before the commit
flag is set. Then:

    chunk_digests(files)              the row to record for a slot's files
    damage(path, slots, deep=False)   {slot: reason} for committed slots whose chunks are missing
                                      or of another size than recorded (deep: or other bytes)

A rerun treats a damaged sample as not computed (``stag_features.ingest``), ``stag store
validate`` reports it (``--deep``: bytes too), and readers refuse its data
(``stag_features.store.reader``).
"""
from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Iterable, Mapping

import numpy as np
import zarr

from schemas.store_spec import CHUNK_DIGEST, COMMITTED, DIGESTED_ARRAYS, DIGESTED_NAME, SAMPLE_ID
from stag_features.store.lock import store_lock
from stag_features.store.rows import read_column

_READ_BLOCK = 1 << 20


def chunk_file(path: Path, array: zarr.Array | zarr.AsyncArray, slot: int) -> Path:
    """The chunk file holding ``slot`` of a per-sample array (one sample per chunk)."""
    return path / array.path / array.metadata.encode_chunk_key((slot,) + (0,) * (len(array.shape) - 1))


def file_digest(file: Path) -> str:
    """``<bytes>:<sha256>`` of a file; '' when it does not exist."""
    digest = hashlib.sha256()
    try:
        with file.open("rb") as handle:
            size = 0
            while block := handle.read(_READ_BLOCK):
                digest.update(block)
                size += len(block)
    except FileNotFoundError:
        return ""
    return f"{size}:{digest.hexdigest()}"


def chunk_digests(files: Mapping[str, Path], names: Iterable[str] = DIGESTED_ARRAYS) -> np.ndarray:
    """The ``chunk_digest`` row (``names``: the store's digested arrays, in order) of a slot whose
    chunk files are ``files``."""
    return np.array([file_digest(files[name]) for name in names], dtype=str)


def _problem(file: Path, recorded: str, deep: bool) -> str | None:
    """What is wrong with a chunk file against its recorded digest, or None."""
    try:
        size = os.stat(file).st_size
    except FileNotFoundError:
        return "chunk file missing"
    if not recorded:
        return None  # recorded before digests existed (a migrated store checks them by decoding)
    want_size, _, want_hash = recorded.partition(":")
    if size != int(want_size):
        return f"chunk file is {size} bytes, {want_size} were written"
    if deep and file_digest(file) != recorded:
        return "chunk file's bytes differ from those written (sha256)"
    return None


def digested_names(group: zarr.Group) -> tuple[str, ...]:
    """The digested arrays of an open store, in ``chunk_digest``'s order (as it records them)."""
    if DIGESTED_NAME not in group:
        return DIGESTED_ARRAYS  # a v1 store, before migration
    return tuple(str(v) for v in read_column(group[DIGESTED_NAME])[0])


def damage(path: str | Path, slots: Iterable[int] | None = None, deep: bool = False) -> dict[int, str]:
    """{slot: 'array: reason'} of the committed slots (all, or those in ``slots``) whose chunks are
    missing or differ from what was written. Checks file sizes (a stat per chunk) and, with ``deep``,
    every file's sha256; a rerun uses deep (reading the store once costs little beside recomputing)."""
    path = Path(path)
    with store_lock(path, exclusive=False):
        group = zarr.open_group(str(path), mode="r")
        names = digested_names(group)
        arrays = {name: group[name] for name in names if name in group}
        committed = np.asarray(group[COMMITTED][:], dtype=bool)
        digests = group[CHUNK_DIGEST][:] if CHUNK_DIGEST in group else None
    wanted = np.flatnonzero(committed) if slots is None else [s for s in slots if committed[s]]
    found: dict[int, str] = {}
    for slot in wanted:
        row = [str(v) for v in digests[slot].tolist()] if digests is not None else [""] * len(names)
        for name, recorded in zip(names, row):
            if name not in arrays:
                continue
            problem = _problem(chunk_file(path, arrays[name], int(slot)), recorded, deep)
            if problem:
                found[int(slot)] = f"{name}: {problem}"
                break
    return found


def describe(path: Path, slot_reasons: Mapping[int, str]) -> dict[str, str]:
    """The same damage keyed by sample id (for messages)."""
    if not slot_reasons:
        return {}
    with store_lock(path, exclusive=False):
        ids = read_column(zarr.open_group(str(path), mode="r")[SAMPLE_ID])[0]
    return {str(ids[slot]): reason for slot, reason in slot_reasons.items()}

