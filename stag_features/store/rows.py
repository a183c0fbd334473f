"""Rows (samples) of a store array as float32, fast: the reader's whole-batch chunk path.

Zarr v3 spends 0.2-0.4 ms of asyncio and codec-pipeline bookkeeping per chunk,
more than decoding a composite sample costs. When an array is laid out one
sample per chunk in a local store with the ``bytes`` codec followed by ``zstd``
/ ``blosc`` (or nothing), as ``stag_features.store.writer`` writes it, each
row's chunk file is read and decoded here with the codecs zarr itself uses
(numcodecs), straight into the float32 result; any other layout goes through
zarr's ``oindex``.
"""
from __future__ import annotations

import os
import struct
from typing import Callable

import numpy as np
import zarr
from numcodecs import blosc, zstd
from zarr.codecs import BloscCodec, BytesCodec, ZstdCodec
from zarr.core.chunk_grids import RegularChunkGrid
from zarr.storage import LocalStore

BLOSC_HEADER = struct.Struct("<BBBBIII")  # version, versionlz, flags, typesize, nbytes, blocksize, cbytes
# what numcodecs raises for a damaged chunk (MemoryError: a cut vlen-string chunk claims a huge length)
DECODE_ERRORS = (RuntimeError, ValueError, TypeError, MemoryError)


def blosc_whole(raw: bytes) -> bytes:
    """``raw`` if it is a whole blosc frame (its header's compressed size is its length), else ValueError:
    blosc decodes a frame cut short without an error when its data was stored uncompressed."""
    if len(raw) < BLOSC_HEADER.size or BLOSC_HEADER.unpack_from(raw)[6] != len(raw):
        expected = BLOSC_HEADER.unpack_from(raw)[6] if len(raw) >= BLOSC_HEADER.size else "a 16-byte header"
        raise ValueError(f"blosc frame of {len(raw)} bytes, its header says {expected}")
    return blosc.decompress(raw)


# bytes -> bytes codecs decoded here; their frames are self-describing (level, shuffle, typesize are in the data)
_DECODERS = {ZstdCodec: zstd.decompress, BloscCodec: blosc_whole}


def float32_empty(shape: tuple[int, ...]) -> np.ndarray:
    """The default allocator of ``read_rows``' result."""
    return np.empty(shape, np.float32)


def row_files(array: zarr.Array) -> tuple[str, np.dtype, list[Callable]] | None:
    """(array folder, on-disk dtype, decoders to apply in turn) when every row is
    one chunk file of a local store with codecs ``bytes`` [+ zstd / blosc]; None
    for any other layout."""
    meta = array.metadata
    store = array.store_path.store
    if (meta.zarr_format != 3 or not isinstance(store, LocalStore) or not isinstance(meta.chunk_grid, RegularChunkGrid)
            or tuple(meta.chunk_grid.chunk_shape) != (1, *array.shape[1:])):
        return None
    codecs = tuple(meta.codecs)
    if not codecs or not isinstance(codecs[0], BytesCodec) or any(type(c) not in _DECODERS for c in codecs[1:]):
        return None
    dtype = np.dtype(array.dtype)
    if codecs[0].endian is not None:
        dtype = dtype.newbyteorder("<" if codecs[0].endian.value == "little" else ">")
    return os.path.join(store.root, array.store_path.path), dtype, [_DECODERS[type(c)] for c in reversed(codecs[1:])]


class RowError(ValueError):
    """A row's chunk is missing or cannot be decoded; ``row`` says which."""

    def __init__(self, row: int, reason: str):
        super().__init__(reason)
        self.row, self.reason = row, reason


def read_rows(array: zarr.Array, rows: np.ndarray, empty: Callable = float32_empty,
              missing: str = "fill") -> np.ndarray:
    """``array[rows]`` (rows in any order, repeats allowed) as float32, in an
    array made by ``empty(shape)``; a row whose chunk was never written reads as
    the fill value, as in zarr (``missing="fill"``), or raises RowError
    (``missing="raise"``: rows that must have been written). A chunk that does not
    decode raises RowError."""
    rows = np.asarray(rows, dtype=np.int64)
    out = empty((len(rows), *array.shape[1:]))
    files = row_files(array)
    if files is None:
        out[...] = array.oindex[rows]
        return out
    if rows.size and (rows.min() < 0 or rows.max() >= array.shape[0]):
        raise IndexError(f"rows {rows.tolist()} out of range for {array.shape[0]} rows of {array.name}")
    folder, dtype, decoders = files
    rest = (0,) * (array.ndim - 1)
    for i, row in enumerate(rows.tolist()):
        try:
            with open(os.path.join(folder, array.metadata.encode_chunk_key((row, *rest))), "rb", buffering=0) as file:
                raw = file.readall()
        except FileNotFoundError:
            if missing == "raise":
                raise RowError(row, "chunk file missing") from None
            out[i] = array.metadata.fill_value
            continue
        try:
            for decode in decoders:
                raw = decode(raw)
            out[i] = np.frombuffer(raw, dtype).reshape(out.shape[1:])
        except DECODE_ERRORS as exc:
            raise RowError(row, f"chunk does not decode ({type(exc).__name__}: {exc})") from None
    return out


def read_column(array: zarr.Array) -> tuple[np.ndarray, list[int]]:
    """(every row of a per-sample array, rows whose chunk does not decode). Whole in one read when
    every chunk decodes; otherwise chunk by chunk, an undecodable chunk reading as the fill value, so
    that a damaged chunk (a truncated sample id, say) costs its sample and not the whole store."""
    try:
        return array[:], []
    except DECODE_ERRORS:
        pass
    values, broken = np.full(array.shape, array.metadata.fill_value, dtype=array.dtype), []
    for row in range(array.shape[0]):
        try:
            values[row] = array[row]
        except DECODE_ERRORS:
            broken.append(row)
    return values, broken
