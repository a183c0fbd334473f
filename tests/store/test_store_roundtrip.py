"""Store writer and reader on SampleFeatures built from small random arrays."""
from __future__ import annotations

import numpy as np
import pytest
import zarr

from schemas.pipeline_config import PipelineConfig
from schemas.store_spec import SAMPLE_ARRAYS
from stag_features.errors import SampleError
from stag_features.store.identity import StoreMismatchError
from stag_features.store.query import open_store, read_sample
from stag_features.store.slots import record_failure, sample_arrays, write_sample
from stag_features.store.writer import allocate_slots, ensure_store, slot_states

IDS = ["s1/a", "s1/b", "s2/a"]


@pytest.fixture
def filled(tmp_path, make_features, make_identity):
    path = tmp_path / "tiny.zarr"
    identity = make_identity()
    assert ensure_store(path, identity) == "created"
    slots = allocate_slots(path, IDS)
    features = {sid: make_features(sid, seed=i, n_time=7 + i) for i, sid in enumerate(IDS)}
    for sid, feat in features.items():
        write_sample(path, slots[sid], feat, input_hash=f"hash-{sid}")
    return path, identity, slots, features


def test_every_array_round_trips(filled):
    path, identity, _slots, features = filled
    for sid, feat in features.items():
        stored = read_sample(path, sid)
        expected = sample_arrays(feat, identity.layout, identity.store_config.flow_dtype)
        for name, value in expected.items():
            np.testing.assert_array_equal(stored[name], value, err_msg=f"{sid} {name}")
        n = len(feat.frame_numbers)
        np.testing.assert_array_equal(stored["motion_curve"][:n], feat.motion_curve)
        assert np.isnan(stored["motion_curve"][n:]).all() and (stored["frame_numbers"][n:] == -1).all()
        # float16 encoding of flow is the documented one: within half a float16 ulp
        np.testing.assert_allclose(stored["flow"].astype("float32"), feat.flow, rtol=1e-3, atol=1e-4)
        assert stored["committed"] and stored["input_hash"] == f"hash-{sid}"
        assert stored["label"].tolist() == [feat.record.labels["demo"], -1]


def test_one_sample_per_chunk_and_dimension_names(filled):
    path = filled[0]
    group = zarr.open_group(str(path), mode="r")
    for spec in SAMPLE_ARRAYS:
        array = group[spec.name]
        assert array.chunks[0] == 1 and array.chunks[1:] == array.shape[1:], spec.name
        assert tuple(array.metadata.dimension_names) == spec.dims
        assert array.shards is None


def test_xarray_view_has_coordinates(filled):
    path, identity, _slots, features = filled
    ds = open_store(path)
    assert list(ds["sample"].values) == IDS
    assert list(ds["roi"].values) == list(identity.layout.roi_names)
    assert list(ds["au"].values) == list(identity.layout.au_names)
    assert list(ds["subject"].values) == ["s1", "s1", "s2"]
    assert ds["flow"].chunks[0] == (1, 1, 1)  # dask-backed, one sample per chunk
    assert ds.attrs["class_schemes"] == {"demo": ["happy", "sad"], "other": ["a", "b", "c"]}


def test_uncommitted_and_failed_samples_are_invisible(tmp_path, make_features, make_identity):
    path = tmp_path / "tiny.zarr"
    ensure_store(path, make_identity())
    slots = allocate_slots(path, IDS)
    write_sample(path, slots["s1/a"], make_features("s1/a", 0), "h0")
    record_failure(path, slots["s1/b"], "s1/b", "face", "no face in frame 0", "h1")
    # s2/a allocated but never written: as after a crash mid-sample
    assert list(open_store(path)["sample"].values) == ["s1/a"]
    assert open_store(path, include_uncommitted=True).sizes["sample"] == 3
    states = slot_states(path)
    assert states["s1/b"].failure_stage == "face" and not states["s1/b"].committed
    assert states["s2/a"].input_hash == "" and not states["s2/a"].committed
    # a later success clears the failure
    write_sample(path, slots["s1/b"], make_features("s1/b", 1), "h1")
    assert slot_states(path)["s1/b"].failure_stage == ""


def test_slots_are_reused_and_appended(filled):
    path, _identity, slots, _features = filled
    again = allocate_slots(path, ["s2/a", "s3/a"])
    assert again["s2/a"] == slots["s2/a"] and again["s3/a"] == 3
    assert zarr.open_group(str(path), mode="r")["flow"].shape[0] == 4


def test_writing_into_another_samples_slot_is_refused(filled, make_features):
    path, _identity, slots, _features = filled
    with pytest.raises(ValueError, match="belongs to 's1/a'"):
        write_sample(path, slots["s1/a"], make_features("s2/a", 5), "h")


def test_wrong_shape_names_sample_and_array(filled, make_features):
    path, identity, _slots, _features = filled
    bad = make_features("s1/a", 0)
    bad.flow = bad.flow[:, :, :5]
    with pytest.raises(SampleError, match="'flow' has shape"):
        sample_arrays(bad, identity.layout, "float16")
    long = make_features("s1/a", 0, n_time=identity.layout.time + 1)
    with pytest.raises(SampleError, match="max_time"):
        sample_arrays(long, identity.layout, "float16")


def test_other_config_is_refused_with_a_hint_and_force_rebuilds(filled, make_identity):
    path = filled[0]
    changed = PipelineConfig().with_overrides(tvl1={"epsilon": 0.05})
    with pytest.raises(StoreMismatchError, match=r"tvl1\.epsilon: 0\.01 -> 0\.05.*--force"):
        ensure_store(path, make_identity(changed))
    assert open_store(path).sizes["sample"] == 3  # refused: untouched
    assert ensure_store(path, make_identity(changed), rebuild=True) == "rebuilt"
    assert open_store(path).sizes["sample"] == 0
    assert ensure_store(path, make_identity(changed)) == "opened"


def test_validate_passes_and_catches_a_missing_chunk(filled):
    from stag_features.store.validate import validate_store

    path, _identity, slots, _features = filled
    report = validate_store(path)
    assert report.ok, report.text()
    assert (report.slots, report.committed) == (3, 3)
    chunk = path / "au_truth" / "c" / str(slots["s1/b"])
    import shutil

    shutil.rmtree(chunk)  # (1, A) array: the chunk is c/<slot>/0
    report = validate_store(path)
    assert not report.ok and "'s1/b'" in report.text() and "au_truth" in report.text()


def test_readme_queries_agree_with_numpy(filled):
    path, _identity, _slots, features = filled
    ds = open_store(path)
    per_emotion = ds.au_activation.max("frame").groupby("emotion").mean().compute()
    for emotion in ("happy", "sad"):
        rows = [f.au_activations.max(axis=0) for f in features.values() if f.record.emotion == emotion]
        np.testing.assert_allclose(per_emotion.sel(emotion=emotion).values, np.mean(rows, axis=0), rtol=1e-6)
    s1 = ds.where(ds.subject == "s1", drop=True)
    assert list(s1["sample"].values) == ["s1/a", "s1/b"]
    n = int(s1.n_time.sel(sample="s1/b"))
    np.testing.assert_array_equal(s1.motion_curve.sel(sample="s1/b").values[:n], features["s1/b"].motion_curve)


def test_concurrent_writer_threads_leave_every_sample_complete(tmp_path, make_features, make_identity):
    """Threads writing different samples at once (the default task runner) lose no chunk."""
    from concurrent.futures import ThreadPoolExecutor

    from stag_features.store.validate import validate_store

    path = tmp_path / "threads.zarr"
    ensure_store(path, make_identity())
    ids = [f"s{i % 3}/c{i}" for i in range(12)]
    slots = allocate_slots(path, ids)
    with ThreadPoolExecutor(max_workers=6) as pool:
        list(pool.map(lambda i: write_sample(path, slots[ids[i]], make_features(ids[i], i), f"h{i}"), range(12)))
    report = validate_store(path)
    assert report.ok and report.committed == 12, report.text()


@pytest.mark.parametrize("compressor", ["zstd", "blosc-zstd", "blosc-lz4", "none"])
def test_every_compressor_round_trips_and_is_recorded(tmp_path, make_features, make_identity, compressor):
    from schemas.store_config import StoreConfig

    config = PipelineConfig().with_overrides(store={"compressor": compressor})
    identity = make_identity(config=config, store_config=config.store)
    path = tmp_path / f"{compressor}.zarr"
    ensure_store(path, identity)
    feat = make_features("s1/a", seed=3)
    write_sample(path, allocate_slots(path, ["s1/a"])["s1/a"], feat, input_hash="hash-s1/a")
    stored = read_sample(path, "s1/a")
    for name, value in sample_arrays(feat, identity.layout, "float16").items():
        np.testing.assert_array_equal(stored[name], value, err_msg=f"{compressor} {name}")
    codecs = [type(c).__name__ for c in zarr.open_group(str(path), mode="r")["flow"].compressors]
    assert codecs == {"zstd": ["ZstdCodec"], "none": []}.get(compressor, ["BloscCodec"])
    assert StoreConfig.model_validate(open_store(path).attrs["store_config"]).compressor == compressor
