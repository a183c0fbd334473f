"""stag-ingest's fast path: a rerun with nothing to do never starts Prefect, and changes nothing."""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
import zarr

import stag_features.ingest.steps as ingest_steps
from flows.ingest import ingest_dataset
from stag_cli.ingest import ingest_main
from stag_features.adapters import AdapterResult, load_dataset
from stag_features.ingest.input_hash import input_hash
from stag_features.ingest.steps import resolve_producer, settled_plan
from stag_features.store.identity import StoreMismatchError
from stag_features.store.slots import record_failure
from stag_features.store.validate import validate_store
from stag_features.store.writer import slot_states

from .conftest import PROJECT_ROOT, copy_store, demo_entry, write_catalog  # noqa: TID252

# runs stag-ingest in a fresh process and says whether Prefect, Dask or OpenCV were imported
_CLI = """
import json, sys
from stag_cli.ingest import ingest_main
code = ingest_main(sys.argv[1:])
heavy = sorted(m for m in ("prefect", "prefect_dask", "dask", "distributed", "cv2") if m in sys.modules)
print(json.dumps({"code": code, "heavy_imports": heavy}))
"""


def _cli(*args: str) -> tuple[dict, str, str]:
    """(result line, stdout, stderr) of stag-ingest with ``args`` in a fresh Python process."""
    run = subprocess.run([sys.executable, "-c", _CLI, *args], cwd=PROJECT_ROOT, capture_output=True, text=True,
                         env=os.environ, timeout=600)
    lines = run.stdout.strip().splitlines()
    assert run.returncode == 0 and lines, (run.stdout[-2000:], run.stderr[-2000:])
    return json.loads(lines[-1]), run.stdout, run.stderr


def _fingerprint(store: Path) -> dict[str, str]:
    """sha256 of every file of a store (the lock file beside it is not part of it)."""
    return {str(p.relative_to(store)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(store.rglob("*")) if p.is_file()}


@pytest.fixture
def demo_copy(threaded_demo_store, tiny_demo_raw, tmp_path) -> tuple[Path, Path]:
    """(catalog, store): a private copy of the fully ingested tiny demo store."""
    _catalog, reference = threaded_demo_store
    store = copy_store(reference, tmp_path / "demo.zarr")
    return write_catalog(tmp_path, {"demo": demo_entry(tiny_demo_raw, store)}), store


def test_rerun_of_a_complete_store_takes_the_fast_path(demo_copy):
    catalog, store = demo_copy
    before = _fingerprint(store)
    result, out, _err = _cli("--catalog", str(catalog), "--dataset", "demo", "--workers", "2")
    assert result == {"code": 0, "heavy_imports": []}  # no Prefect, no Dask cluster, no OpenCV
    assert "computed            0" in out and "reused             10" in out and "no flow run started" in out
    assert _fingerprint(store) == before  # byte for byte


def test_a_first_ingest_hashes_inputs_in_its_tasks_and_a_rerun_in_planning(threaded_demo_store, tiny_demo_raw,
                                                                            tmp_path, monkeypatch):
    catalog, store = threaded_demo_store
    entry, producer = resolve_producer(catalog, "demo")
    records = {r.sample_id: r for r in load_dataset(entry).records}
    # the tasks of the first ingest stored the hash planning would have computed
    assert {sid: s.input_hash for sid, s in slot_states(store).items()} == {
        sid: input_hash(r, producer) for sid, r in records.items()}
    hashed = []
    real = ingest_steps.input_hashes
    monkeypatch.setattr(ingest_steps, "input_hashes",
                        lambda rs, p: (hashed.extend(r.sample_id for r in rs), real(rs, p))[1])
    fresh = resolve_producer(write_catalog(tmp_path, {"demo": demo_entry(tiny_demo_raw, tmp_path / "new.zarr")}),
                            "demo")[0]
    plan = ingest_steps.prepare_ingest(fresh, producer)
    assert hashed == [] and len(plan.work) == len(records)  # a new store: nothing read in planning
    assert {item.input_hash for item in plan.work} == {ingest_steps.DEFERRED_HASH}
    copy = copy_store(store, tmp_path / "copy.zarr")
    (tmp_path / "c").mkdir()
    settled = resolve_producer(write_catalog(tmp_path / "c", {"demo": demo_entry(tiny_demo_raw, copy)}), "demo")[0]
    plan = ingest_steps.prepare_ingest(settled, producer)
    assert sorted(hashed) == sorted(records) and not plan.work  # committed: every input hashed, all skipped
    hashed.clear()
    plan = ingest_steps.prepare_ingest(settled, producer, force=True)
    assert sorted(hashed) == sorted(records) and len(plan.work) == len(records)  # --force: hashed, so a dead
    assert all(item.input_hash != ingest_steps.DEFERRED_HASH for item in plan.work)  # batch can't claim old commits


def test_settled_plan_skips_exactly_what_prepare_would_skip(demo_copy):
    catalog, store = demo_copy
    entry, producer = resolve_producer(catalog, "demo")
    plan = settled_plan(entry, producer)
    assert plan is not None and not plan.work and plan.bad_rows == 0
    assert sorted(o.sample_id for o in plan.decided if o.status == "skipped") == sorted(slot_states(store))
    states = slot_states(store)
    first, second, third = sorted(states)[:3]
    # a failure that says something about the input stands: still nothing to do
    record_failure(store, states[first].slot, first, "face", "no face", states[first].input_hash)
    assert settled_plan(entry, producer) is not None
    # a retryable failure (a stage's bug, exhausted I/O retries) and an interrupted sample are work
    for stage in ("unexpected", "io"):
        record_failure(store, states[second].slot, second, stage, "boom", states[second].input_hash)
        assert settled_plan(entry, producer) is None, stage
    record_failure(store, states[second].slot, second, "face", "no face", states[second].input_hash)
    assert settled_plan(entry, producer) is not None
    record_failure(store, states[third].slot, third, "face", "no face", "another input")  # input changed
    assert settled_plan(entry, producer) is None


def test_a_clip_missing_from_the_store_runs_the_flow(demo_copy, prefect_server, capsys, caplog):
    catalog, store = demo_copy
    states = slot_states(store)
    victim = sorted(states)[4]
    zarr.open_group(str(store), mode="r+")["committed"][states[victim].slot] = False  # as if killed mid-write
    entry, producer = resolve_producer(catalog, "demo")
    assert settled_plan(entry, producer) is None
    assert ingest_main(["--catalog", str(catalog), "--dataset", "demo"]) == 0
    out = capsys.readouterr().out
    assert "no flow run started" not in out
    assert "computed            1" in out and "reused              9" in out  # the flow's summary, on the terminal
    assert "1/1 ok " in caplog.text  # the per-sample line: in Prefect's records, not on the terminal
    assert slot_states(store)[victim].committed and validate_store(store).ok


def test_a_clip_added_to_the_sheet_or_changed_is_work(demo_copy, monkeypatch):
    catalog, _store = demo_copy
    entry, producer = resolve_producer(catalog, "demo")
    records = load_dataset(entry).records

    def sheet(recs):
        monkeypatch.setattr(ingest_steps, "load_dataset", lambda _entry: AdapterResult(list(recs)))

    sheet(records[:-1])  # a sample of the store that the sheet no longer lists is left alone
    assert settled_plan(entry, producer) is not None
    sheet([*records, records[0].model_copy(update={"clip": "brand_new"})])
    assert settled_plan(entry, producer) is None
    changed = records[0].model_copy(update={"emotion": "changed"})  # the input hash covers the record
    assert input_hash(changed, producer) != input_hash(records[0], producer)
    sheet([changed, *records[1:]])
    assert settled_plan(entry, producer) is None


def _pipeline_options(catalog: Path, **sections: dict) -> None:
    body = yaml.safe_load(catalog.read_text())
    pipeline = body["datasets"]["demo"]["options"]["pipeline"]
    for section, values in sections.items():
        pipeline[section] = {**pipeline.get(section, {}), **values}
    catalog.write_text(yaml.safe_dump(body))


def test_thread_and_lock_settings_reuse_the_store(demo_copy):
    """tvl1.opencv_threads and store.lock_timeout_s change how a run works, not what it writes: a rerun
    with other values settles on the fast path, the store unchanged."""
    catalog, store = demo_copy
    _pipeline_options(catalog, tvl1={"opencv_threads": 2}, store={"lock_timeout_s": 30})
    before = _fingerprint(store)
    result, out, _err = _cli("--catalog", str(catalog), "--dataset", "demo")
    assert result == {"code": 0, "heavy_imports": []}
    assert "reused             10" in out and "no flow run started" in out
    assert _fingerprint(store) == before


def _as_recorded_before(store: Path, config) -> str:
    """Turn ``store`` into one written before the threads and the lock wait left the hash: its
    recorded config holds them and its hash (store and every sample) covers them. Returns that hash."""
    full = config.model_dump(mode="json", by_alias=True)
    full.pop("execution")
    digest = hashlib.sha256(json.dumps(full, sort_keys=True, separators=(",", ":")).encode()).hexdigest()
    group = zarr.open_group(str(store), mode="r+")
    group.attrs.update({"pipeline_config": full, "config_hash": digest})
    hashes = group["config_hash"]
    hashes[:] = [digest if str(h) else "" for h in hashes[:]]
    return digest


def test_a_store_whose_hash_covered_threads_and_lock_waits_is_reused(demo_copy, tmp_path):
    """A store from before: nothing refused, nothing recomputed, its own hash kept for new samples; with
    another thread count too. A real parameter change is still refused."""
    catalog, store = demo_copy
    entry, producer = resolve_producer(catalog, "demo")
    legacy = _as_recorded_before(store, producer.config)
    assert legacy != producer.config.config_hash()
    _pipeline_options(catalog, tvl1={"opencv_threads": 3})
    entry, producer = resolve_producer(catalog, "demo")
    settled = settled_plan(entry, producer)
    assert settled is not None and settled.config_hash == legacy
    assert {o.status for o in settled.decided} == {"skipped"}
    plan = ingest_steps.prepare_ingest(entry, producer)  # the flow's planning
    assert plan.work == [] and plan.store_state == "opened" and plan.config_hash == legacy
    assert ingest_steps.stale_reason(entry, producer) is None
    _pipeline_options(catalog, tvl1={"epsilon": 0.04})
    entry, producer = resolve_producer(catalog, "demo")
    with pytest.raises(StoreMismatchError, match="tvl1.epsilon: 0.05 -> 0.04") as refused:
        settled_plan(entry, producer)
    assert "opencv_threads" not in str(refused.value) and "lock_timeout_s" not in str(refused.value)


def test_config_change_is_refused_with_the_flows_message_without_prefect(demo_copy, tmp_path, prefect_server):
    catalog, store = demo_copy
    body = yaml.safe_load(catalog.read_text())
    body["datasets"]["demo"]["options"]["pipeline"]["tvl1"]["epsilon"] = 0.04
    catalog.write_text(yaml.safe_dump(body))
    before = _fingerprint(store)
    result, _out, err = _cli("--catalog", str(catalog), "--dataset", "demo")
    assert result == {"code": 2, "heavy_imports": []}
    with pytest.raises(StoreMismatchError) as flow_error:  # what the flow itself says
        ingest_dataset(catalog=str(catalog), dataset="demo")
    assert err.strip() == f"stag-ingest: error: {flow_error.value}"
    assert "tvl1.epsilon: 0.05 -> 0.04" in err
    assert _fingerprint(store) == before


@pytest.mark.slow
def test_bad_sheet_rows_settle_and_the_fast_path_reports_like_the_flow(tiny_demo_raw, tmp_path, prefect_server):
    raw = tmp_path / "raw"
    raw.mkdir()
    good = next(p for p in sorted(tiny_demo_raw.glob("s01/*")) if p.is_dir())
    shutil.copytree(good, raw / "good")  # a copy: a link leaving the root is a bad row
    sheet = tmp_path / "sheet.csv"
    sheet.write_text(
        "subject,clip,onset,apex,offset,emotion,aus,source\n"
        "s01,good,3,8,15,happiness,6+12,good\n"
        "s09,missing_folder,3,8,15,disgust,9,s09/missing_folder\n"  # a record without frames: rejected
        "s10,backwards,9,5,3,disgust,9,good\n"  # onset after offset: a sheet-only bad row
    )
    store = tmp_path / "bad.zarr"
    catalog = write_catalog(tmp_path, {"bad": {"adapter": "generic_csv", "root": str(raw), "annotations": str(sheet),
                                               "store": str(store), "default_scheme": "casme2-5", "fps": 30}})
    config = tmp_path / "pipeline.yaml"
    config.write_text("align: {crop_size: 96}\nselection: {k: 3}\ntvl1: {epsilon: 0.05}\nstore: {max_time: 64}\n")
    args = ["--catalog", str(catalog), "--dataset", "bad", "--config", str(config)]
    first = ingest_dataset(catalog=str(catalog), dataset="bad", config_path=str(config))
    assert first["ok"] == 1 and first["bad_rows"] >= 1, first
    flow_rerun = ingest_dataset(catalog=str(catalog), dataset="bad", config_path=str(config))
    before = _fingerprint(store)
    result, out, _err = _cli(*args)
    assert result["heavy_imports"] == [] and "no flow run started" in out
    assert result["code"] == (0 if flow_rerun["failed"] == 0 else 1)
    counts = {"computed": flow_rerun["ok"], "reused": flow_rerun["skipped"], "bad sheet rows": flow_rerun["bad_rows"]}
    for name, value in counts.items():
        assert f"  {name:<15}{value:>6}" in out, out
    assert "s10" in out or "sheet:" in out, out  # the bad rows listed with their reasons
    assert f"stag store failures {store}" in out, out
    assert _fingerprint(store) == before
