"""The store's read API: metadata, visible samples, columns and the fast row path (direct chunk
reads equal zarr's for every compressor the writer offers)."""
from __future__ import annotations

import pickle

import numpy as np
import pytest
import zarr
from zarr.codecs import BloscCodec, ZstdCodec

from schemas.store_spec import FEATURE_ARRAYS
from stag_features.store import StoreReader, open_stores
from stag_features.store.rows import read_rows, row_files
from stag_features.store.slots import record_failure, write_sample
from stag_features.store.writer import allocate_slots, ensure_store

IDS = ["s1/a", "s1/b", "s2/a", "s2/b"]


@pytest.fixture
def store(tmp_path, make_features, make_identity):
    """Four slots: three committed (labels 0, 1, 0 in scheme demo), s2/b failed."""
    path = tmp_path / "tiny.zarr"
    ensure_store(path, make_identity())
    slots = allocate_slots(path, IDS)
    features = {sid: make_features(sid, seed=i) for i, sid in enumerate(IDS)}
    for sid in IDS[:3]:
        write_sample(path, slots[sid], features[sid], input_hash=f"h-{sid}")
    record_failure(path, slots["s2/b"], "s2/b", "face", "no face", "h")
    return path, slots, features


def test_metadata_names_the_layout(store, make_identity):
    path, _slots, _features = store
    meta = StoreReader(path).metadata
    layout = make_identity().layout
    assert (meta.dataset, meta.producer, meta.flow_units) == ("tiny", "pipeline", "px")
    assert meta.roi_names == layout.roi_names and meta.au_names == layout.au_names
    assert meta.edge_index.tolist() == [list(e) for e in layout.edges] and meta.edge_index.dtype == np.int64
    assert meta.entry_shape("flow") == (layout.frames, 2, layout.height, layout.width)


def test_only_committed_samples_are_visible(store):
    path, slots, features = store
    reader = StoreReader(path)
    assert reader.committed().tolist() == [slots[s] for s in IDS[:3]]
    visible, labels = reader.labelled("demo")
    assert visible.tolist() == [slots[s] for s in IDS[:3]]
    assert labels.tolist() == [features[s].record.labels["demo"] for s in IDS[:3]]
    assert reader.labelled("other")[0].size == 0  # no sample has a class in this scheme
    with pytest.raises(KeyError, match="no class scheme 'nope'"):
        reader.labelled("nope")


def test_columns_and_reads_follow_the_slots_given(store):
    path, slots, features = store
    reader = StoreReader(path)
    order = np.array([slots["s2/a"], slots["s1/a"], slots["s2/a"]])
    assert reader.column("sample_id", order).tolist() == ["s2/a", "s1/a", "s2/a"]
    flow = reader.read("flow", order)
    assert flow.dtype == np.float32 and flow.shape == (3, *reader.metadata.entry_shape("flow"))
    np.testing.assert_allclose(flow[1], features["s1/a"].flow, rtol=1e-3, atol=1e-3)  # float16 on disk
    with pytest.raises(KeyError, match="no array 'nope'"):
        reader.read("nope", order)


def test_a_reader_pickles_without_its_open_arrays(store):
    path, slots, _features = store
    reader = StoreReader(path)
    expected = reader.read("strain", [slots["s1/b"]])
    copy = pickle.loads(pickle.dumps(reader))
    assert copy.path == path and copy._arrays == {}
    np.testing.assert_array_equal(copy.read("strain", [slots["s1/b"]]), expected)


def test_missing_stores_are_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="no feature store at .*missing.zarr"):
        open_stores([tmp_path / "missing.zarr"])
    with pytest.raises(ValueError, match="no store given"):
        open_stores([])


def test_direct_chunk_reads_equal_zarr(store):
    path = store[0]
    group = zarr.open_group(str(path), mode="r")
    rows = np.array([2, 0, 3, 2])  # any order, a repeat, a failed slot (its features never written)
    for name in FEATURE_ARRAYS:
        assert row_files(group[name]) is not None, f"{name}: the writer's layout should take the direct path"
        expected = np.asarray(group[name].oindex[rows], dtype=np.float32)
        np.testing.assert_array_equal(read_rows(group[name], rows), expected)
    with pytest.raises(IndexError, match="out of range"):
        read_rows(group["flow"], np.array([0, 4]))


@pytest.mark.parametrize("compressors", [None, "zstd", "blosc-zstd", "blosc-lz4"])
def test_direct_reads_cover_the_store_compressors(tmp_path, compressors):
    codec = {None: None, "zstd": ZstdCodec(level=3), "blosc-zstd": BloscCodec(cname="zstd", shuffle="shuffle"),
             "blosc-lz4": BloscCodec(cname="lz4", shuffle="bitshuffle")}[compressors]
    values = np.random.default_rng(0).normal(size=(5, 3, 4)).astype(np.float16)
    array = zarr.create_array(str(tmp_path / "a.zarr"), shape=values.shape, chunks=(1, 3, 4), dtype="float16",
                              compressors=codec)
    array[:4] = values[:4]  # row 4 never written: the fill value
    assert row_files(array) is not None
    np.testing.assert_array_equal(read_rows(array, np.array([4, 2, 0, 2])),
                                  np.asarray(array.oindex[np.array([4, 2, 0, 2])], np.float32))


def test_other_layouts_read_through_zarr(tmp_path):
    values = np.random.default_rng(0).normal(size=(6, 3, 4)).astype(np.float16)
    array = zarr.create_array(str(tmp_path / "a.zarr"), shape=values.shape, chunks=(2, 3, 4), dtype="float16")
    array[:] = values
    assert row_files(array) is None  # two rows per chunk
    np.testing.assert_array_equal(read_rows(array, np.array([4, 1, 1])), values[[4, 1, 1]].astype(np.float32))
