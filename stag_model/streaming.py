"""Fast, overlapped reads of feature stores for the trainer's sources (`stag_model.data`).

- `read_rows`: rows (samples) of a Zarr array as float32, in the order asked.
  Zarr v3 spends 0.2-0.4 ms of asyncio and codec-pipeline bookkeeping per
  chunk, more than decoding a composite sample costs. When an array is laid out
  one sample per chunk in a local store with the ``bytes`` codec followed by
  ``zstd`` / ``blosc`` (or nothing), as `stag_features.store` writes it, each
  row's chunk file is read and decoded here with the codecs zarr itself uses
  (numcodecs), straight into the float32 result; any other layout goes
  through zarr's ``oindex``.
- `in_background`: an iterator advanced by a thread up to ``depth`` items ahead
  of its consumer, so that reading or gathering the next batch overlaps the
  training step (file reads, zstd, numpy casts and torch copies release the GIL).
- `BatchLoader`: DataLoader worker processes that persist across epochs; an item
  is a whole batch (one read per array per batch, not one per sample) and the
  batch list is replaced at every pass.
"""
from __future__ import annotations

import os
import queue
import threading
from typing import Callable, Iterable, Iterator, TypeVar

import numpy as np
import torch
import zarr
from numcodecs import blosc, zstd
from torch.utils.data import DataLoader, Dataset, Sampler
from zarr.codecs import BloscCodec, BytesCodec, ZstdCodec
from zarr.core.chunk_grids import RegularChunkGrid
from zarr.storage import LocalStore

T = TypeVar("T")
# bytes -> bytes codecs decoded here; their frames are self-describing (level, shuffle, typesize are in the data)
_DECODERS = {ZstdCodec: zstd.decompress, BloscCodec: blosc.decompress}


def _row_files(array: zarr.Array) -> tuple[str, np.dtype, list[Callable]] | None:
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


def float32_empty(shape: tuple[int, ...]) -> np.ndarray:
    return np.empty(shape, np.float32)


class SharedArena:
    """Allocator of float32 arrays carved in turn from one block of ``floats``
    in shared memory (then each in a block of its own once it is used up). The
    arrays are views of torch tensors (their ``.base``), so a DataLoader worker
    hands a whole batch to the main process as one file descriptor, without
    copying, as torch's default_collate does with the batches it stacks.
    ``requested``: the floats asked for so far."""

    def __init__(self, floats: int):
        self.block, self.used, self.requested = self._shared(floats), 0, 0

    @staticmethod
    def _shared(floats: int) -> torch.Tensor:
        return torch.tensor([], dtype=torch.float32).set_(torch.UntypedStorage._new_shared(floats * 4))

    def __call__(self, shape: tuple[int, ...]) -> np.ndarray:
        n = int(np.prod(shape))
        self.requested += n
        if self.used + n <= len(self.block):
            self.used += n
            return self.block[self.used - n:self.used].view(shape).numpy()
        return self._shared(n).view(shape).numpy()


def as_tensor(array: np.ndarray) -> torch.Tensor:
    """The tensor an array views (so shared memory stays shared), else one wrapping it."""
    base = array.base
    if isinstance(base, torch.Tensor) and base.data_ptr() == array.ctypes.data and tuple(base.shape) == array.shape:
        return base
    return torch.from_numpy(array)


def read_rows(array: zarr.Array, rows: np.ndarray, empty: Callable = float32_empty) -> np.ndarray:
    """``array[rows]`` (rows in any order, repeats allowed) as float32, in an
    array made by ``empty(shape)``; a row whose chunk was never written reads as
    the fill value, as in zarr."""
    rows = np.asarray(rows, dtype=np.int64)
    out = empty((len(rows), *array.shape[1:]))
    files = _row_files(array)
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
            out[i] = array.metadata.fill_value
            continue
        for decode in decoders:
            raw = decode(raw)
        out[i] = np.frombuffer(raw, dtype).reshape(out.shape[1:])
    return out


_DONE = object()


def in_background(items: Iterable[T], depth: int) -> Iterator[T]:
    """The items of ``items``, produced by a daemon thread at most ``depth`` items
    ahead (started at the first ``next``). An error in the thread is raised here;
    closing this iterator stops the thread and waits for it."""
    ready: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def produce() -> None:
        try:
            for item in items:
                if stop.is_set():
                    return
                ready.put((item, None))
            ready.put((_DONE, None))
        except BaseException as error:  # noqa: BLE001 - handed to the consumer, which re-raises it
            ready.put((_DONE, error))

    thread = threading.Thread(target=produce, name="stag-prefetch", daemon=True)
    thread.start()
    try:
        while True:
            item, error = ready.get()
            if error is not None:
                raise error
            if item is _DONE:
                return
            yield item
    finally:
        stop.set()
        while not ready.empty():  # frees a producer blocked on put; it then sees ``stop`` and returns
            ready.get_nowait()
        thread.join()


class _EpochBatches(Sampler):
    """The batches (lists of positions) of the current pass; replaced before each pass."""

    def __init__(self):
        self.batches: list[list[int]] = []

    def __iter__(self) -> Iterator[list[int]]:
        return iter(self.batches)

    def __len__(self) -> int:
        return len(self.batches)


class _BatchDataset(Dataset):
    """Item = a whole batch: ``read(positions)`` runs in the worker process."""

    def __init__(self, read: Callable):
        self.read = read

    def __getitem__(self, positions: list[int]):
        return self.read(positions)


def _unchanged(item):
    return item


class BatchLoader:
    """``read(batch)`` for every batch of a pass, in ``workers`` processes that
    persist across passes, ``prefetch`` batches ahead per worker; results are
    pinned when ``pin`` (CUDA). One pass at a time: a pass started while an
    earlier one is unfinished ends the earlier one (it raises if resumed)."""

    def __init__(self, read: Callable, workers: int, prefetch: int, pin: bool):
        self.order = _EpochBatches()
        self.loader = DataLoader(_BatchDataset(read), batch_size=None, sampler=self.order, collate_fn=_unchanged,
                                 num_workers=workers, prefetch_factor=prefetch, persistent_workers=True,
                                 pin_memory=pin,
                                 generator=torch.Generator())  # its own RNG: the global one (dropout, init) stays untouched
        self.passes = 0

    def __call__(self, batches: list[list[int]]) -> Iterator:
        self.passes += 1
        this_pass = self.passes
        self.order.batches = batches
        items = iter(self.loader)  # persistent workers: the same workers, reset to the new batch list
        while True:
            if self.passes != this_pass:
                raise RuntimeError("another pass over this source started before this one finished; "
                                   "a streaming source serves one batches() iteration at a time")
            try:
                item = next(items)
            except StopIteration:
                return
            yield item

    def close(self) -> None:
        """Stop the worker processes (they also stop when the loader is garbage collected)."""
        iterator = getattr(self.loader, "_iterator", None)
        if iterator is not None:
            iterator._shutdown_workers()
            self.loader._iterator = None
