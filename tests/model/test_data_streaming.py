"""The trainer's read paths: background prefetch keeps order and errors,
persistent DataLoader workers give the in-memory source's batches epoch after epoch, reads begun ahead for the next epoch
(``upcoming``) change no batch whether they are used, dropped or cut short, and
read errors name the store."""
from __future__ import annotations

import os
import re
import shutil
import threading
import time

import numpy as np
import pytest
import torch

from schemas.model_config import DataConfig
from stag_model.data import FEATURE_ARRAYS, InMemorySource, Normaliser, StreamingSource, open_samples
from stag_model.streaming import Background, SharedArena, as_tensor, in_background, resolve_workers
from stag_model.train import epoch_orders

CPU = torch.device("cpu")


def _assert_same_batches(first, second):
    assert len(first) == len(second)
    for (p1, b1), (p2, b2) in zip(first, second):
        assert p1.tolist() == p2.tolist()
        for name in FEATURE_ARRAYS:
            torch.testing.assert_close(getattr(b1, name), getattr(b2, name), rtol=0, atol=0)


def test_background_yields_every_item_once_in_order():
    produced = []

    def items():
        for i in range(50):
            produced.append(i)
            yield i

    assert list(in_background(items(), depth=2)) == list(range(50))
    assert produced == list(range(50))


def _new_prefetch_threads(before: set[threading.Thread]) -> list[threading.Thread]:
    """Reader threads alive now that were not before (other threads, e.g. zarr's event loop, may come and go)."""
    return [t for t in threading.enumerate() if t not in before and t.name == "stag-prefetch"]


def test_background_stops_when_closed_early_and_raises_errors():
    before = set(threading.enumerate())
    stream = in_background(iter(range(1000)), depth=1)
    assert next(stream) == 0
    stream.close()
    assert not _new_prefetch_threads(before)  # the thread was joined

    def failing():
        yield 1
        raise ValueError("bad sample")

    stream = in_background(failing(), depth=3)
    assert next(stream) == 1
    with pytest.raises(ValueError, match="bad sample"):
        next(stream)


@pytest.mark.parametrize("workers", [0, 2])
def test_streaming_gives_the_in_memory_batches_over_shuffled_epochs(synthetic_store, second_store, workers):
    config = DataConfig(scheme="demo", num_workers=workers)
    samples = open_samples([synthetic_store, second_store], config)  # batches mix both stores
    positions = np.arange(3, len(samples) - 2)
    memory = InMemorySource(samples, config, CPU)
    stream = StreamingSource(samples, config, CPU)
    try:
        g_memory, g_stream = torch.Generator().manual_seed(7), torch.Generator().manual_seed(7)
        epochs = []
        for _ in range(2):
            expected = list(memory.batches(positions, 8, g_memory))
            _assert_same_batches(expected, list(stream.batches(positions, 8, g_stream)))
            epochs.append(np.concatenate([p for p, _ in expected]))
        assert sorted(epochs[0].tolist()) == sorted(epochs[1].tolist()) == positions.tolist()
        assert epochs[0].tolist() != epochs[1].tolist()  # two different shuffles
        _assert_same_batches(list(memory.batches(positions, 8)), list(stream.batches(positions, 8)))  # unshuffled
    finally:
        stream.close()


def test_workers_persist_across_passes_and_passes_do_not_interleave(synthetic_store):
    config = DataConfig(scheme="demo", num_workers=2)
    samples = open_samples([synthetic_store], config)
    stream = StreamingSource(samples, config, CPU)
    try:
        assert len(list(stream.batches(np.arange(20), 4))) == 5
        workers = [w.pid for w in stream.loader.loader._iterator._workers]
        next(stream.batches(np.arange(20), 4))  # a pass left unfinished ...
        assert len(list(stream.batches(np.arange(20), 4))) == 5  # ... does not disturb the next one
        assert [w.pid for w in stream.loader.loader._iterator._workers] == workers
        first, second = stream.batches(np.arange(20), 4), stream.batches(np.arange(20, 36), 4)
        next(first)
        assert next(second)[0].tolist() == [20, 21, 22, 23]
        with pytest.raises(RuntimeError, match="one batches\\(\\) iteration at a time"):
            next(first)
    finally:
        stream.close()


@pytest.mark.parametrize("workers", [0, 1])
def test_read_errors_name_the_store(synthetic_store, tmp_path, workers):
    broken = tmp_path / "broken.zarr"
    shutil.copytree(synthetic_store, broken)
    config = DataConfig(scheme="demo", num_workers=workers)
    samples = open_samples([broken], config)
    slot = int(samples.slots[0][3])
    (broken / "flow" / "c" / str(slot) / "0" / "0" / "0" / "0").write_bytes(b"not zstd")
    stream = StreamingSource(samples, config, CPU)
    try:
        with pytest.raises(RuntimeError, match=f"store {re.escape(str(broken))}: reading slots .*{slot}.* failed"):
            list(stream.batches(np.arange(8), 4))
    finally:
        stream.close()


def test_worker_batches_are_made_in_one_block_of_shared_memory():
    arena = SharedArena(10)
    first, second = arena((2, 3)), arena((4,))  # 10 floats: both in the block
    third = arena((3,))  # the block is used up: a block of its own
    first[...], second[...], third[...] = 1.5, 2.5, 3.5
    tensors = [as_tensor(a) for a in (first, second, third)]
    assert all(t.is_shared() for t in tensors) and arena.requested == 13
    assert tensors[0].untyped_storage().data_ptr() == tensors[1].untyped_storage().data_ptr()
    assert tensors[2].untyped_storage().data_ptr() != tensors[0].untyped_storage().data_ptr()
    assert torch.equal(tensors[1], torch.full((4,), 2.5)) and tensors[0].shape == (2, 3)
    plain = np.zeros((2, 2), np.float32)
    assert not as_tensor(plain).is_shared() and as_tensor(plain).data_ptr() == plain.ctypes.data


def _wait_for(condition, timeout_s: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.01)
    return condition()


@pytest.fixture(scope="module")
def two_stores(synthetic_store, second_store):
    config = DataConfig(scheme="demo", num_workers=0)
    samples = open_samples([synthetic_store, second_store], config)  # batches mix both stores
    return samples, list(InMemorySource(samples, config, CPU).batches(np.arange(len(samples)), 1))


def _expected(reference, order: np.ndarray, batch_size: int):
    """The batches of ``order`` cut from single-sample in-memory batches (no upcoming, no shuffling)."""
    by_position = {int(p[0]): b for p, b in reference}
    out = []
    for i in range(0, len(order), batch_size):
        pos = order[i:i + batch_size]
        stacked = {name: torch.cat([getattr(by_position[int(p)], name) for p in pos]) for name in FEATURE_ARRAYS}
        out.append((pos, type(reference[0][1])(**{**vars(reference[0][1]), **stacked})))
    return out


def _source(kind: str, samples):
    config = DataConfig(scheme="demo", num_workers=2 if kind == "stream_w2" else 0)
    return InMemorySource(samples, config, CPU) if kind == "memory" else StreamingSource(samples, config, CPU)


@pytest.mark.parametrize("kind", ["memory", "stream_w0", "stream_w2"])
def test_reading_the_next_epoch_ahead_changes_no_batch(two_stores, kind):
    samples, reference = two_stores
    positions = np.arange(3, len(samples) - 2)
    orders = epoch_orders(positions, 3, torch.Generator().manual_seed(7))
    source = _source(kind, samples)
    try:
        for e, order in enumerate(orders):  # the trainer's call pattern
            upcoming = orders[e + 1] if e + 1 < len(orders) else None
            got = []
            for pos, batch in source.batches(order, 8, upcoming=upcoming):
                got.append((pos, batch))
                if len(got) * 8 >= len(order) and upcoming is not None:  # the last batch is in use
                    assert source.passes._ahead is not None and source.passes._ahead[0].tolist() == upcoming.tolist()
            _assert_same_batches(_expected(reference, order, 8), got)
            assert source.passes._ahead is None if upcoming is None else source.passes._ahead is not None
        # the unshuffled pass, and a shuffled one drawn by the source, match the in-memory batches
        g_memory, g_source = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
        memory = InMemorySource(samples, DataConfig(scheme="demo"), CPU)
        _assert_same_batches(list(memory.batches(positions, 5, g_memory)), list(source.batches(positions, 5, g_source)))
        _assert_same_batches(_expected(reference, positions, 5), list(source.batches(positions, 5)))
    finally:
        if hasattr(source, "close"):
            source.close()


def test_the_next_epoch_is_read_while_the_last_batch_is_in_use(two_stores):
    samples, reference = two_stores
    source = _source("stream_w0", samples)
    calls = []
    read = source.reader
    source.reader = lambda positions: (calls.append(np.asarray(positions).tolist()), read(positions))[1]
    first, second = np.arange(0, 20), np.arange(40, 20, -1)
    for i, _ in enumerate(source.batches(first, 8, upcoming=second)):
        if i == 2:  # the last batch of the epoch is in use
            assert _wait_for(lambda: second[:8].tolist() in calls)
    _assert_same_batches(_expected(reference, second, 8), list(source.batches(second, 8)))
    chunks = [second[i:i + 8].tolist() for i in range(0, len(second), 8)]
    assert [c for c in calls if c in chunks] == chunks  # each batch read once: the reads ahead were used
    source.close()


@pytest.mark.parametrize("kind", ["memory", "stream_w0", "stream_w2"])
def test_the_next_epoch_begins_as_many_batches_before_the_end_as_the_reader_has_in_flight(two_stores, kind):
    """A short last batch (a short last step) must not leave the next epoch's first read unfinished, and
    the reader must not pause between epochs: the next epoch's reads begin once this one's are all
    asked for, ``prefetch_factor`` batches before the end for a reader thread, ``workers *
    prefetch_factor`` for DataLoader workers."""
    samples, reference = two_stores
    source = _source(kind, samples)
    first, second = np.arange(0, 49), np.arange(40, 20, -1)  # 7 batches of 8, the last of 1
    prefetch = DataConfig(scheme="demo").prefetch_factor
    lead = 2 * prefetch if kind == "stream_w2" else prefetch
    begun = []
    try:
        for i, _ in enumerate(source.batches(first, 8, upcoming=second)):
            begun.append(source.passes._ahead is not None)
        assert begun == [i >= 6 - lead for i in range(7)]
        _assert_same_batches(_expected(reference, second, 8), list(source.batches(second, 8)))
    finally:
        if hasattr(source, "close"):
            source.close()


class _LoggedRead:
    """A worker's batch reads, each appended (positions) to a file shared by the worker processes."""

    def __init__(self, read, log):
        self.read, self.log = read, log

    def __call__(self, positions):
        with open(self.log, "a") as handle:
            handle.write(" ".join(map(str, positions)) + "\n")
        return self.read(positions)


@pytest.mark.parametrize("batches", [6, 3])  # more, and fewer, than the 2 x 2 results the workers hold in flight
def test_dataloader_workers_read_on_into_the_next_epoch(two_stores, tmp_path, batches):
    """Before the last steps of an epoch the workers already read the next epoch's first batches, in the
    same DataLoader iteration (no reset): each is read once and the batches are unchanged."""
    samples, reference = two_stores
    source = _source("stream_w2", samples)
    log = tmp_path / "reads.txt"
    log.touch()
    dataset = source.loader.loader.dataset
    dataset.read = _LoggedRead(dataset.read, log)  # before the workers start
    first, second = np.arange(0, 8 * batches), np.arange(40, 8, -1)  # batches of 8, then 4
    wanted = " ".join(map(str, second[:8]))
    try:
        for i, _ in enumerate(source.batches(first, 8, upcoming=second)):
            if i == batches - 2:  # the epoch's last step but one
                assert _wait_for(lambda: wanted in log.read_text().splitlines(), timeout_s=5.0)
        _assert_same_batches(_expected(reference, second, 8), list(source.batches(second, 8)))
    finally:
        source.close()
    reads = log.read_text().splitlines()
    chunks = [" ".join(map(str, second[i:i + 8])) for i in range(0, len(second), 8)]
    assert sorted(r for r in reads if r in chunks) == sorted(chunks)  # each once (two workers: any order)


def test_the_normaliser_pass_reads_the_first_epoch_ahead(two_stores):
    samples, reference = two_stores
    source = _source("stream_w0", samples)
    first_epoch = np.arange(40, 20, -1)
    try:
        Normaliser.fit(source, np.arange(0, 20), 8, 1e-6, upcoming=first_epoch)
        assert source.passes._ahead is not None and source.passes._ahead[0].tolist() == first_epoch.tolist()
        _assert_same_batches(_expected(reference, first_epoch, 8), list(source.batches(first_epoch, 8)))
    finally:
        source.close()


@pytest.mark.parametrize("kind", ["memory", "stream_w0", "stream_w2"])
def test_reads_ahead_for_another_pass_are_dropped(two_stores, kind):
    samples, reference = two_stores
    before = set(threading.enumerate())
    source = _source(kind, samples)
    a, b = np.arange(0, 24), np.arange(24, 0, -1)
    try:
        list(source.batches(a, 8, upcoming=b))
        _assert_same_batches(_expected(reference, a, 8), list(source.batches(a, 8)))  # asks for other positions
        list(source.batches(a, 8, upcoming=b))
        _assert_same_batches(_expected(reference, b, 6), list(source.batches(b, 6)))  # another batch size
        list(source.batches(a, 8, upcoming=b))
        shuffled = list(source.batches(b, 8, torch.Generator().manual_seed(1)))  # a shuffle of its own
        order = b[torch.randperm(len(b), generator=torch.Generator().manual_seed(1)).numpy()]
        _assert_same_batches(_expected(reference, order, 8), shuffled)
        list(source.batches(a, 8, upcoming=b))
        _assert_same_batches(_expected(reference, b.astype(np.int32), 8), list(source.batches(b.astype(np.int32), 8)))
        assert source.passes._ahead is None
        list(source.batches(a, 8, upcoming=b))  # left pending, then stopped
    finally:
        if hasattr(source, "close"):
            source.close()
        else:
            source.passes.drop()
    if kind != "stream_w2":  # worker processes keep threads of their own until they are collected
        assert not _new_prefetch_threads(before)


@pytest.mark.parametrize("kind", ["memory", "stream_w0", "stream_w2"])
def test_an_epoch_left_early_leaves_the_next_one_intact(two_stores, kind):
    samples, reference = two_stores
    orders = epoch_orders(np.arange(len(samples)), 4, torch.Generator().manual_seed(11))
    source = _source(kind, samples)
    try:
        for pos, _ in source.batches(orders[0], 8, upcoming=orders[1]):
            break  # before its reads ahead began
        _assert_same_batches(_expected(reference, orders[1], 8), list(source.batches(orders[1], 8, upcoming=orders[2])))
        for i, _ in enumerate(source.batches(orders[2], 8, upcoming=orders[3])):
            if (i + 1) * 8 >= len(orders[2]):
                break  # at the last batch: the next epoch's reads have begun
        assert source.passes._ahead is not None
        _assert_same_batches(_expected(reference, orders[3], 8), list(source.batches(orders[3], 8)))
    finally:
        if hasattr(source, "close"):
            source.close()


def test_background_starts_at_once_and_stops_unstarted():
    before = set(threading.enumerate())
    produced = []
    stream = Background((produced.append(i) or i for i in range(100)), depth=2)
    assert _wait_for(lambda: len(produced) >= 2)  # read ahead before any next()
    stream.close()
    assert not _new_prefetch_threads(before) and len(produced) <= 4
    with pytest.raises(StopIteration):
        next(stream)


def test_auto_workers_read_in_a_thread_on_the_cpu_and_explicit_counts_pass_through(monkeypatch):
    assert resolve_workers("auto", torch.device("cpu")) == 0
    assert resolve_workers(3, torch.device("cpu")) == 3
    monkeypatch.setattr(os, "sched_getaffinity", lambda _: set(range(8)))
    assert resolve_workers("auto", torch.device("cuda")) == DataConfig.AUTO_WORKERS
    monkeypatch.setattr(os, "sched_getaffinity", lambda _: {0, 1})
    assert resolve_workers("auto", torch.device("cuda")) == 0
