"""Damage to a committed sample's chunks is found, refused and repaired; a store of spec v1 is
migrated, not rebuilt (tests/store/test_identity.py covers what a rerun recomputes)."""
from __future__ import annotations

import shutil

import numpy as np
import pytest
import zarr

from schemas.store_spec import (
    CHUNK_DIGEST,
    COMMITTED,
    DIGESTED_ARRAYS,
    DIGESTED_NAME,
    FEATURE_ARRAYS,
    INPUT_HASH,
    SCHEMA_VERSION,
    UNDECODABLE_FRAMES,
)
from stag_features.ingest.input_hash import legacy_input_hashes
from stag_features.ingest.steps import ingest_in_process, prepare_ingest, resolve_producer
from stag_features.store import DamagedSampleError, StoreReader
from stag_features.store.integrity import chunk_file, damage
from stag_features.store.query import open_store
from stag_features.store.validate import validate_store
from stag_features.store.writer import slot_states

from .conftest import copy_store, demo_entry, stores_equal, write_catalog  # noqa: TID252

DAMAGES = ("delete", "truncate", "zero")


def _damage(store, name: str, slot: int, how: str) -> None:
    file = chunk_file(store, zarr.open_group(str(store), mode="r")[name], slot)
    if how == "delete":
        file.unlink()
    elif how == "truncate":
        file.write_bytes(file.read_bytes()[: max(1, file.stat().st_size // 2)])
    else:  # the same number of zero bytes: only the digest tells
        file.write_bytes(bytes(file.stat().st_size))


@pytest.fixture
def demo_copy(threaded_demo_store, tiny_demo_raw, tmp_path):
    _catalog, reference = threaded_demo_store
    store = copy_store(reference, tmp_path / "demo.zarr")
    catalog = write_catalog(tmp_path, {"demo": demo_entry(tiny_demo_raw, store)})
    return catalog, store, reference


def test_a_committed_sample_records_the_digest_of_every_chunk_it_wrote(demo_copy):
    _catalog, store, _reference = demo_copy
    group = zarr.open_group(str(store), mode="r")
    assert group.attrs["schema_version"] == SCHEMA_VERSION
    assert [str(n) for n in group[DIGESTED_NAME][:]] == list(DIGESTED_ARRAYS)
    digests = group[CHUNK_DIGEST][0]
    flow = chunk_file(store, group["flow"], 0)
    size, _, sha = str(digests[DIGESTED_ARRAYS.index("flow")]).partition(":")
    assert int(size) == flow.stat().st_size and len(sha) == 64
    assert damage(store, deep=True) == {} and validate_store(store, deep=True).ok


@pytest.mark.slow
@pytest.mark.parametrize("how", DAMAGES)
def test_damage_to_any_array_is_found_refused_and_repaired(demo_copy, how):
    """One chunk of every digested array damaged (a different sample for each array, in turn): validate
    names each sample and array, readers refuse them, stag-fit stops, and a rerun recomputes exactly
    the damaged samples, after which the store equals the undamaged one."""
    catalog, store, reference = demo_copy
    slots = {sid: s.slot for sid, s in slot_states(store).items()}
    ids = sorted(slots)
    offset = DAMAGES.index(how) * len(ids)  # the three kinds together reach every digested array
    victims = {}
    for i, name in enumerate(DIGESTED_ARRAYS[offset % len(DIGESTED_ARRAYS):][:len(ids)]):
        victims[ids[i]] = name
        _damage(store, name, slots[ids[i]], how)
    deep = how == "zero"  # a same-size overwrite is found by the bytes' digest, the rest by size alone
    report = validate_store(store, deep=deep)
    assert not report.ok and report.damaged == len(victims)
    for sid, name in victims.items():
        named = f"(slot {slots[sid]})" if name == "sample_id" else f"{sid!r}"  # a lost id: the slot says which
        assert any(named in p and name in p for p in report.problems), (sid, name, report.problems)
    if not deep:
        reader = StoreReader(store)
        for sid, name in victims.items():
            with pytest.raises(DamagedSampleError, match=f"sample '{sid if name != 'sample_id' else ''}'"):
                reader.read("flow", [slots[sid]]) if name in FEATURE_ARRAYS else reader.column("subject", [slots[sid]])
        with pytest.raises(DamagedSampleError, match="damaged"):
            open_store(store)
        from stag_cli.fit import main as fit

        assert fit(["--store", str(store), "--scheme", "demo", "--epochs", "1", "--parallel", "none",
                    "--out", str(store.parent / "run")]) == 2
        assert not (store.parent / "run" / "metrics.json").exists()  # it never trained
    entry, producer = resolve_producer(catalog, "demo")
    plan = prepare_ingest(entry, producer)
    assert sorted(item.sample_id for item in plan.work) == sorted(victims)
    # each damaged sample is recomputed in its slot; one whose id was lost in a new slot, the old one retired
    assert sorted(plan.damaged) == sorted(sid for sid, name in victims.items() if name != "sample_id")
    summary = ingest_in_process(entry, producer)
    assert summary.count("ok") == len(victims) and summary.count("failed") == 0
    assert validate_store(store, deep=True).ok and stores_equal(store, reference) == []


def test_stag_fit_stops_on_a_damaged_store_with_one_line(demo_copy, capsys):
    _catalog, store, _reference = demo_copy
    victim = sorted(slot_states(store).items())[2]
    _damage(store, "strain", victim[1].slot, "truncate")
    from stag_cli.fit import main as fit

    code = fit(["--store", str(store), "--scheme", "demo", "--epochs", "1", "--out", str(store.parent / "run")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1
    assert f"sample '{victim[0]}'" in err and "'strain'" in err and "stag-ingest" in err


def test_a_chunk_that_does_not_decode_is_refused_by_every_reader_naming_its_sample(demo_copy):
    """Same size, other bytes: the plain size check cannot tell; decoding does, at open for the
    coordinates and when a lazy array's sample is computed."""
    _catalog, store, _reference = demo_copy
    (first, one), (second, two) = sorted((sid, s.slot) for sid, s in slot_states(store).items())[:2]
    _damage(store, "flow", one, "zero")
    ds = open_store(store)  # flow is lazy: opening reads no flow chunk
    ds.flow.sel(sample=second).values  # another sample reads
    with pytest.raises(DamagedSampleError, match=f"sample '{first}': array 'flow'"):
        ds.flow.sel(sample=first).values
    with pytest.raises(DamagedSampleError, match=f"sample '{first}': array 'flow'"):
        StoreReader(store).read("flow", [one])
    _damage(store, "subject", two, "zero")
    with pytest.raises(DamagedSampleError, match=f"sample '{second}': array 'subject'"):
        StoreReader(store).column("subject", [one, two])
    with pytest.raises(DamagedSampleError, match=f"{second} \\(subject: chunk does not decode"):
        open_store(store)


def test_a_lost_sample_id_costs_its_sample_only(demo_copy):
    """A truncated sample_id chunk (a cut vlen string claims a huge length): the rerun recomputes the
    sample in a new slot instead of failing to read the ids."""
    catalog, store, reference = demo_copy
    victim, state = sorted(slot_states(store).items())[3]
    _damage(store, "sample_id", state.slot, "truncate")
    assert victim not in slot_states(store)
    entry, producer = resolve_producer(catalog, "demo")
    summary = ingest_in_process(entry, producer)
    assert summary.count("ok") == 1 and slot_states(store)[victim].slot != state.slot
    assert validate_store(store, deep=True).ok and stores_equal(store, reference) == []


def test_non_finite_features_are_refused_at_write_and_at_read(demo_copy, make_features, make_identity, tmp_path):
    from stag_features.errors import SampleError
    from stag_features.store.slots import write_sample
    from stag_features.store.writer import allocate_slots, ensure_store

    path = tmp_path / "nan.zarr"
    ensure_store(path, make_identity())
    slot = allocate_slots(path, ["s1/a"])["s1/a"]
    features = make_features("s1/a", seed=0)
    features.flow[0, 0, 0, 0] = np.nan
    with pytest.raises(SampleError, match="'flow' holds 1 NaN or infinite"):
        write_sample(path, slot, features, "h")
    assert not zarr.open_group(str(path), mode="r")[COMMITTED][slot]
    _catalog, store, _reference = demo_copy  # a committed sample whose float16 flow became inf on disk
    group = zarr.open_group(str(store), mode="r+")
    flow = group["flow"][0]
    flow[0, 0, 0, 0] = np.inf
    group["flow"][0] = flow
    with pytest.raises(DamagedSampleError, match="holds NaN or infinite"):
        StoreReader(store).read("flow", [0])


def _as_v1(store, catalog) -> dict[str, str]:
    """Turn a store into one spec v1 wrote: no digests, no undecodable_frames, the input hashes of
    then (over paths and sheet rows). Returns those hashes by sample id."""
    entry, producer = resolve_producer(catalog, "demo")
    from stag_features.adapters import load_dataset

    records = {r.sample_id: r for r in load_dataset(entry).records}
    group = zarr.open_group(str(store), mode="r+")
    for name in (CHUNK_DIGEST, UNDECODABLE_FRAMES, DIGESTED_NAME):
        shutil.rmtree(store / name)
    attrs = dict(group.attrs)
    attrs.pop("input_identity")
    group.attrs.clear()
    group.attrs.update({**attrs, "schema_version": 1})
    legacy = {}
    for sid, state in slot_states(store).items():
        (old,) = legacy_input_hashes(records[sid], producer)
        group[INPUT_HASH][state.slot] = old
        legacy[sid] = old
    return legacy


def test_a_v1_store_is_migrated_not_rebuilt(demo_copy):
    catalog, store, reference = demo_copy
    legacy = _as_v1(store, catalog)
    assert "spec v1" in validate_store(store).text()
    entry, producer = resolve_producer(catalog, "demo")
    plan = prepare_ingest(entry, producer)  # the flow's planning: migrates, then decides
    assert plan.work == [] and plan.store_state == "migrated"
    group = zarr.open_group(str(store), mode="r")
    assert group.attrs["schema_version"] == SCHEMA_VERSION and group.attrs["input_identity"] == "content-v1"
    migrated = {sid: s.input_hash for sid, s in slot_states(store).items()}
    assert migrated == {sid: s.input_hash for sid, s in slot_states(reference).items()}
    assert all(migrated[sid] != old for sid, old in legacy.items())
    assert validate_store(store, deep=True).ok and stores_equal(store, reference) == []


def test_migration_uncommits_a_sample_already_damaged(demo_copy):
    catalog, store, _reference = demo_copy
    _as_v1(store, catalog)
    victim, state = sorted(slot_states(store).items())[0]
    _damage(store, "roi_stats", state.slot, "truncate")
    from stag_cli.main import main as stag

    assert stag(["store", "migrate", str(store)]) == 0
    after = slot_states(store)[victim]
    assert not after.committed and after.failure_stage == "integrity" and "roi_stats" in after.failure_reason
    assert validate_store(store).ok  # the others kept, with their digests
