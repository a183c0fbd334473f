"""The fast store paths: direct chunk reads equal zarr's, background prefetch
keeps order and errors, persistent DataLoader workers give the in-memory
source's batches epoch after epoch, and read errors name the store."""
from __future__ import annotations

import re
import shutil
import threading

import numpy as np
import pytest
import torch
import zarr
from zarr.codecs import BloscCodec, ZstdCodec

from schemas.model_config import DataConfig
from stag_model.data import FEATURE_ARRAYS, InMemorySource, StreamingSource, open_samples
from stag_model.streaming import SharedArena, _row_files, as_tensor, in_background, read_rows

CPU = torch.device("cpu")


def _assert_same_batches(first, second):
    assert len(first) == len(second)
    for (p1, b1), (p2, b2) in zip(first, second):
        assert p1.tolist() == p2.tolist()
        for name in FEATURE_ARRAYS:
            torch.testing.assert_close(getattr(b1, name), getattr(b2, name), rtol=0, atol=0)


def test_direct_chunk_reads_equal_zarr(synthetic_store):
    group = zarr.open_group(str(synthetic_store), mode="r")
    rows = np.array([5, 0, 33, 12, 5, 37])  # any order, a repeat, an uncommitted slot (never written)
    for name in FEATURE_ARRAYS:
        assert _row_files(group[name]) is not None, f"{name}: the writer's layout should take the direct path"
        expected = np.asarray(group[name].oindex[rows], dtype=np.float32)
        np.testing.assert_array_equal(read_rows(group[name], rows), expected)
    with pytest.raises(IndexError, match="out of range"):
        read_rows(group["flow"], np.array([0, 38]))


@pytest.mark.parametrize("compressors", [None, "zstd", "blosc-zstd", "blosc-lz4"])
def test_direct_reads_cover_the_store_compressors(tmp_path, compressors):
    codec = {None: None, "zstd": ZstdCodec(level=3), "blosc-zstd": BloscCodec(cname="zstd", shuffle="shuffle"),
             "blosc-lz4": BloscCodec(cname="lz4", shuffle="bitshuffle")}[compressors]
    values = np.random.default_rng(0).normal(size=(5, 3, 4)).astype(np.float16)
    array = zarr.create_array(str(tmp_path / "a.zarr"), shape=values.shape, chunks=(1, 3, 4), dtype="float16",
                              compressors=codec)
    array[:4] = values[:4]  # row 4 never written: the fill value
    assert _row_files(array) is not None
    np.testing.assert_array_equal(read_rows(array, np.array([4, 2, 0, 2])),
                                  np.asarray(array.oindex[np.array([4, 2, 0, 2])], np.float32))


def test_other_layouts_read_through_zarr(tmp_path):
    values = np.random.default_rng(0).normal(size=(6, 3, 4)).astype(np.float16)
    array = zarr.create_array(str(tmp_path / "a.zarr"), shape=values.shape, chunks=(2, 3, 4), dtype="float16")
    array[:] = values
    assert _row_files(array) is None  # two rows per chunk
    np.testing.assert_array_equal(read_rows(array, np.array([4, 1, 1])), values[[4, 1, 1]].astype(np.float32))


def test_background_yields_every_item_once_in_order():
    produced = []

    def items():
        for i in range(50):
            produced.append(i)
            yield i

    assert list(in_background(items(), depth=2)) == list(range(50))
    assert produced == list(range(50))


def test_background_stops_when_closed_early_and_raises_errors():
    before = threading.active_count()
    stream = in_background(iter(range(1000)), depth=1)
    assert next(stream) == 0
    stream.close()
    assert threading.active_count() == before  # the thread was joined

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
