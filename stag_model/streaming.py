"""Overlapped reads of feature stores for the trainer's sources (`stag_model.data`); the
reads themselves go through the store's API (`stag_features.store.StoreReader.read`).

- `in_background`: an iterator advanced by a thread up to ``depth`` items ahead
  of its consumer, so that reading or gathering the next batch overlaps the
  training step (file reads, zstd, numpy casts and torch copies release the GIL).
- `Passes`: one pass (epoch) at a time over batches, whose reads run ahead and,
  when the next pass's order is known (``upcoming``), on into the next pass
  (from as many batches before the end as the reader has in flight).
- `BatchLoader`: DataLoader worker processes that persist across epochs; an item
  is a whole batch (one read per array per batch, not one per sample); a pass
  begun while the workers still read the one before is fed to the same
  DataLoader iteration, so the workers read on into the next epoch.
"""
from __future__ import annotations

import os
import queue
import threading
from collections import deque
from contextlib import closing
from typing import Callable, Generic, Iterable, Iterator, TypeVar

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from schemas.model_config import DataConfig

T = TypeVar("T")


def resolve_workers(setting: int | str, device: torch.device) -> int:
    """DataConfig.num_workers as a count: ``auto`` is 0 on the CPU or with at most
    DataConfig.AUTO_WORKERS usable cores (worker processes would take cores from
    the training step), else DataConfig.AUTO_WORKERS."""
    if setting != "auto":
        return int(setting)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return 0 if device.type == "cpu" or cores <= DataConfig.AUTO_WORKERS else DataConfig.AUTO_WORKERS


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


def pinned(item: tuple[np.ndarray, dict[str, torch.Tensor]]) -> tuple[np.ndarray, dict[str, torch.Tensor]]:
    """(positions, tensors) with the tensors copied to pinned memory (for non_blocking copies to CUDA)."""
    return item[0], {k: v.pin_memory() for k, v in item[1].items()}


def as_tensor(array: np.ndarray) -> torch.Tensor:
    """The tensor an array views (so shared memory stays shared), else one wrapping it."""
    base = array.base
    if isinstance(base, torch.Tensor) and base.data_ptr() == array.ctypes.data and tuple(base.shape) == array.shape:
        return base
    return torch.from_numpy(array)


_DONE = object()


def _produce(items: Iterable, ready: queue.Queue, stop: threading.Event) -> None:
    try:
        for item in items:
            if stop.is_set():
                return
            ready.put((item, None))
        ready.put((_DONE, None))
    except BaseException as error:  # noqa: BLE001 - handed to the consumer, which re-raises it
        ready.put((_DONE, error))


class Background(Iterator[T]):
    """The items of ``items``, produced by a daemon thread (started at once) at
    most ``depth`` items ahead of the consumer. An error in the thread is raised
    by ``next``; ``close`` stops the thread and waits for it."""

    def __init__(self, items: Iterable[T], depth: int):
        self._ready: queue.Queue = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=_produce, args=(items, self._ready, self._stop), name="stag-prefetch",
                                        daemon=True)  # holds no reference to self, so an abandoned one is collected
        self._thread.start()

    def __next__(self) -> T:
        if self._stop.is_set():
            raise StopIteration
        item, error = self._ready.get()
        if item is _DONE:
            self.close()
            if error is not None:
                raise error
            raise StopIteration
        return item

    def _release(self) -> None:
        self._stop.set()
        while not self._ready.empty():  # frees a producer blocked on put; it then sees ``stop`` and returns
            self._ready.get_nowait()

    def close(self) -> None:
        self._release()
        while self._thread.is_alive():
            self._thread.join(timeout=0.01)
            self._release()  # the producer may have put one more item before it saw ``stop``

    def __del__(self) -> None:
        self._release()  # no join: this may run at interpreter exit


def in_background(items: Iterable[T], depth: int) -> Background[T]:
    """``items`` advanced by a thread up to ``depth`` items ahead (`Background`)."""
    return Background(items, depth)


def split_batches(order: np.ndarray, batch_size: int) -> list[np.ndarray]:
    """``order`` cut into consecutive batches of ``batch_size`` (the last may be shorter)."""
    return [order[i:i + batch_size] for i in range(0, len(order), batch_size)]


class Passes(Generic[T]):
    """Passes over batches of positions, one at a time. ``start(batches)`` makes
    the results of a pass's batches (in order) and begins reading them as it is
    called. A pass told which positions the next pass will ask for
    (``upcoming``, in their final order) starts that pass's reads as it is about
    to hand out its result ``lead`` places before its last (at the latest
    before the first), so the first batches of the next epoch are read while
    the last steps of this one run. A reader that is ``depth`` results ahead (a reader
    thread; DataLoader workers, ``workers * prefetch``) has read its pass to the
    end ``depth`` results before the last: a lead of ``depth`` keeps it reading
    on, and a short last batch (a short last step) from leaving the next
    epoch's first read unfinished. The next pass uses those reads if it asks
    for exactly those positions and batch size; otherwise they are stopped and
    dropped."""

    def __init__(self, start: Callable[[list[np.ndarray]], Iterator[T]], lead: int = 0):
        self.start, self.lead = start, lead
        self._ahead: tuple[np.ndarray, int, Iterator[T]] | None = None

    def __call__(self, positions: np.ndarray, batch_size: int, generator: torch.Generator | None = None,
                 upcoming: np.ndarray | None = None) -> Iterator[T]:
        """The result of each batch of ``positions``, shuffled first when a generator is given."""
        shuffle = generator is not None
        order = positions[torch.randperm(len(positions), generator=generator).numpy()] if shuffle else positions
        chunks = split_batches(order, batch_size)
        items = self._claim(order, batch_size)
        with closing(self.start(chunks) if items is None else items) as items:
            begin = max(0, len(chunks) - 1 - self.lead)
            for i in range(len(chunks)):
                if i == begin and upcoming is not None:  # this pass's reads are (about) all asked for: begin the next
                    ahead = np.array(upcoming)
                    self._ahead = (ahead, batch_size, self.start(split_batches(ahead, batch_size)))
                yield next(items)

    def _claim(self, order: np.ndarray, batch_size: int) -> Iterator[T] | None:
        """The reads begun for this pass, if they were of exactly ``order`` and ``batch_size``."""
        ahead, self._ahead = self._ahead, None
        if ahead is None:
            return None
        planned, size, items = ahead
        if size == batch_size and planned.dtype == order.dtype and np.array_equal(planned, order):
            return items
        items.close()
        return None

    def drop(self) -> None:
        """Stop and drop reads begun for a next pass."""
        if self._ahead is not None:
            self._ahead[2].close()
            self._ahead = None


class _FedBatches(Sampler):
    """The batches (lists of positions) handed to the workers, in order, from a
    queue that may be fed while they are handed out. A DataLoader iteration asks
    for one more batch each time it hands out a result, and an empty queue only
    answers "none for now": batches fed while the iteration still has results to
    hand out are drawn into that same iteration. ``dispatched``: batches handed
    to the workers since the iteration began."""

    def __init__(self):
        self.queue: deque[list[int]] = deque()
        self.dispatched = 0

    def __iter__(self) -> Iterator[list[int]]:
        self.dispatched = 0
        return self

    def __next__(self) -> list[int]:
        if not self.queue:
            raise StopIteration  # for now: the iteration asks again as it hands out its next result
        self.dispatched += 1
        return self.queue.popleft()

    def __len__(self) -> int:
        return len(self.queue)


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
    pinned when ``pin`` (CUDA). A pass started while results of the one before
    are still in flight continues the same DataLoader iteration: its batches go
    to the workers as those results are handed out, so the workers read on into
    it without a pause (started ``workers * prefetch`` results before the end of
    a longer pass, every worker slot stays filled; a pass shorter than that
    leaves the slots it could not fill at its reset empty until the next
    reset). Otherwise the iteration is reset, at once if
    every earlier result was handed out, else at the new pass's first result.
    The pass that takes its first result ends every earlier unfinished pass
    (one resumed after that raises)."""

    def __init__(self, read: Callable, workers: int, prefetch: int, pin: bool):
        self.order = _FedBatches()
        self.loader = DataLoader(_BatchDataset(read), batch_size=None, sampler=self.order, collate_fn=_unchanged,
                                 num_workers=workers, prefetch_factor=prefetch, persistent_workers=True,
                                 pin_memory=pin,
                                 generator=torch.Generator())  # its own RNG: the global one (dropout, init) stays untouched
        self.lead = workers * prefetch  # results in flight: a pass started this many results before the end chains
        self._items: Iterator | None = None  # the current DataLoader iteration
        self._iteration = self._fed = self._handed = 0  # its number, batches fed to it, results handed out of it

    def start(self, batches: list[np.ndarray]) -> Iterator:
        """``read(batch)`` of each batch, in order (see the class)."""
        if self._items is not None and self.order.dispatched > self._handed:  # results in flight draw these in
            begin = self._fed
            self.order.queue.extend(batches)
            self._fed += len(batches)
            return self._results(batches, self._iteration, begin)
        if self._handed == self._fed:  # nothing earlier left to hand out: the workers get the first batches now
            self._restart(batches)
            return self._results(batches, self._iteration, 0)
        return self._results(batches, -1, 0)  # reset at its first result

    def _restart(self, batches: list[np.ndarray]) -> None:
        self.order.queue.clear()
        self.order.queue.extend(batches)
        self._items = iter(self.loader)  # persistent workers: the iteration is reset, results in flight dropped
        self._iteration += 1
        self._fed, self._handed = len(batches), 0

    def _results(self, batches: list[np.ndarray], iteration: int, begin: int) -> Iterator:
        for k in range(len(batches)):
            if iteration != self._iteration or self._handed != begin + k:
                if k > 0:
                    raise RuntimeError("another pass over this source started before this one finished; "
                                       "a streaming source serves one batches() iteration at a time")
                self._restart(batches)  # an earlier pass is unfinished or its reads were dropped: it ends here
                iteration, begin = self._iteration, 0
            try:
                item = next(self._items)
            except StopIteration:
                raise RuntimeError("the DataLoader iteration ended before the batches fed to it") from None
            self._handed += 1
            yield item

    def close(self) -> None:
        """Stop the worker processes (they also stop when the loader is garbage collected)."""
        iterator = getattr(self.loader, "_iterator", None)
        if iterator is not None:
            iterator._shutdown_workers()
            self.loader._iterator = None
        self._items, self._fed, self._handed = None, 0, 0
        self._iteration += 1  # a pass begun before ends
