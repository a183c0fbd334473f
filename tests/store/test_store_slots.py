"""The slot writer (stag_features.store.slots): one opening for many slots, the commit flag last."""
from __future__ import annotations

import asyncio

import numpy as np
import pytest
import zarr
from zarr.core.array import AsyncArray

from stag_features.store.query import open_store, read_sample
from stag_features.store.slots import SlotWriter, sample_arrays, write_sample
from stag_features.store.writer import allocate_slots, ensure_store, slot_states

IDS = ["s1/a", "s1/b", "s2/a"]
SLOW_WRITE_S = 0.3  # long enough that a write still pending when an error is raised would be seen


@pytest.fixture
def store(tmp_path, make_identity):
    path = tmp_path / "slots.zarr"
    identity = make_identity()
    ensure_store(path, identity)
    return path, identity, allocate_slots(path, IDS)


def _fail_array_writes(monkeypatch, failing: str, slow: str | None = None):
    """AsyncArray.setitem raising for the array ``failing`` and taking SLOW_WRITE_S for ``slow``."""
    original = AsyncArray.setitem

    async def setitem(self, selection, value, *args, **kwargs):
        if self.path == failing:
            raise OSError(f"disk full writing {failing}")
        if self.path == slow:
            await asyncio.sleep(SLOW_WRITE_S)
        return await original(self, selection, value, *args, **kwargs)

    monkeypatch.setattr(AsyncArray, "setitem", setitem)


def test_one_writer_writes_many_slots_and_one_appended_after_it_opened(store, make_features):
    path, identity, slots = store
    writer = SlotWriter(path)
    features = {sid: make_features(sid, seed=i, n_time=6 + i) for i, sid in enumerate(IDS)}
    for sid, feat in features.items():
        writer.write(slots[sid], feat, f"hash-{sid}")
    late = allocate_slots(path, ["s3/a"])["s3/a"]  # another run appends a slot after the writer opened
    features["s3/a"] = make_features("s3/a", seed=9)
    writer.write(late, features["s3/a"], "h-late")
    writer.record_failure(slots["s2/a"], "s2/a", "face", "no face in frame 0", "h-failed")
    assert list(open_store(path)["sample"].values) == ["s1/a", "s1/b", "s3/a"]
    for sid in ("s1/a", "s1/b", "s3/a"):
        stored = read_sample(path, sid)
        for name, value in sample_arrays(features[sid], identity.layout, "float16").items():
            np.testing.assert_array_equal(stored[name], value, err_msg=f"{sid} {name}")
        assert stored["config_hash"] == identity.config_hash
    failed = slot_states(path)["s2/a"]
    assert (failed.committed, failed.failure_stage, failed.input_hash) == (False, "face", "h-failed")


def test_a_failed_array_write_uncommits_the_slot(store, make_features, monkeypatch):
    path, _identity, slots = store
    write_sample(path, slots["s1/a"], make_features("s1/a", seed=0), "h0")
    assert slot_states(path)["s1/a"].committed
    _fail_array_writes(monkeypatch, failing="flow")
    with pytest.raises(OSError, match="disk full writing flow"):
        write_sample(path, slots["s1/a"], make_features("s1/a", seed=1), "h1")
    # the earlier sample's flow is still on disk under new arrays: the slot must not show as either
    assert not slot_states(path)["s1/a"].committed
    assert "s1/a" not in open_store(path)["sample"].values


def test_every_array_write_has_landed_when_a_failure_is_raised(store, make_features, monkeypatch):
    path, identity, slots = store
    _fail_array_writes(monkeypatch, failing="flow", slow="roi_stats")
    feat = make_features("s1/b", seed=3)
    with pytest.raises(OSError):
        write_sample(path, slots["s1/b"], feat, "h3")
    expected = sample_arrays(feat, identity.layout, "float16")["roi_stats"]
    np.testing.assert_array_equal(zarr.open_group(str(path), mode="r")["roi_stats"][slots["s1/b"]], expected)
    assert not slot_states(path)["s1/b"].committed


def test_a_writer_needs_an_existing_store(tmp_path):
    with pytest.raises(FileNotFoundError, match="no feature store at .*missing.zarr"):
        SlotWriter(tmp_path / "missing.zarr")
