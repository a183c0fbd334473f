"""Crash safety, concurrent writers and bad input."""
from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import zarr

from stag_cli.ingest import ingest_main
from stag_features.store.query import open_store
from stag_features.store.validate import validate_store

from .conftest import PROJECT_ROOT, demo_entry, stores_equal, write_catalog  # noqa: TID252

KILL_ROUNDS = 3
WRITER_SAMPLES = 40


def _committed(store: Path) -> int:
    try:
        return int(zarr.open_group(str(store), mode="r")["committed"][:].sum())
    except (FileNotFoundError, KeyError, ValueError, OSError):
        return 0


def _visible_samples_match(store: Path, reference: Path) -> list[str]:
    """Visible samples of ``store`` that differ from the same samples in ``reference``."""
    if not (store / "zarr.json").exists():
        return []
    visible = open_store(store).load()
    if not visible.sizes["sample"]:
        return []
    wanted = open_store(reference).sel(sample=visible["sample"].values).load()
    return [name for name in wanted.data_vars if name != "failure_time" and wanted[name].dtype.kind not in "TUO"
            and not np.array_equal(visible[name].values, wanted[name].values,
                                   equal_nan=wanted[name].dtype.kind == "f")]


_WRITER = """
import sys
sys.path.insert(0, {tests!r})
from conftest import random_features, tiny_identity
from stag_features.store.writer import allocate_slots, ensure_store
from stag_features.store.slots import write_sample
path, n = sys.argv[1], int(sys.argv[2])
ensure_store(path, tiny_identity())
ids = [f"s{{i % 4}}/c{{i}}" for i in range(n)]
slots = allocate_slots(path, ids)
for i, sid in enumerate(ids):
    f = random_features(sid, seed=i)
    write_sample(path, slots[sid], f, f"hash-{{sid}}")
"""


@pytest.mark.slow
def test_sigkill_during_writes_never_exposes_a_partial_sample(tmp_path, make_features, make_identity):
    """A writer process killed at random moments: every visible sample is complete and exact."""
    from stag_features.store.slots import sample_arrays

    store = tmp_path / "kill.zarr"
    script = _WRITER.format(tests=str(Path(__file__).parent))
    rng = random.Random(1)
    layout = make_identity().layout
    for _ in range(KILL_ROUNDS):
        proc = subprocess.Popen([sys.executable, "-c", script, str(store), str(WRITER_SAMPLES)], cwd=PROJECT_ROOT)
        time.sleep(rng.uniform(1.5, 4.0))  # imports take ~1.5 s, then a sample every ~0.05 s
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        if (store / "zarr.json").exists():
            visible = open_store(store).load()
            for sid in visible["sample"].values:
                expected = sample_arrays(make_features(sid, seed=int(sid.split("/c")[1])), layout, "float16")
                stored = visible.sel(sample=sid)
                for name, value in expected.items():
                    assert np.array_equal(stored[name].values, value, equal_nan=value.dtype.kind == "f"), (sid, name)
    subprocess.run([sys.executable, "-c", script, str(store), str(WRITER_SAMPLES)], cwd=PROJECT_ROOT, check=True)
    assert open_store(store).sizes["sample"] == WRITER_SAMPLES and validate_store(store).ok


@pytest.mark.slow
def test_ingest_killed_at_random_points_then_rerun_equals_uninterrupted(
        threaded_demo_store, tiny_demo_raw, tmp_path, prefect_server):
    _catalog, reference = threaded_demo_store
    store = tmp_path / "crash.zarr"
    catalog = write_catalog(tmp_path, {"demo": demo_entry(tiny_demo_raw, store)})
    rng = random.Random(6)
    command = [sys.executable, "-m", "stag_cli.ingest", "--catalog", str(catalog), "--dataset", "demo"]
    killed_at: list[int] = []  # committed samples when each kill landed
    for round_ in range(KILL_ROUNDS):
        before = _committed(store)
        target = before + rng.randint(0, 3)  # kill after a random number of new commits ...
        with (tmp_path / f"run{round_}.log").open("w") as log:
            proc = subprocess.Popen(command, cwd=PROJECT_ROOT, stdout=log, stderr=subprocess.STDOUT, env=os.environ)
            while proc.poll() is None and _committed(store) < target:
                time.sleep(0.05)
            time.sleep(rng.uniform(0.0, 0.6))  # ... plus a random fraction of a second
            proc.send_signal(signal.SIGKILL)
            if proc.wait() == -signal.SIGKILL:
                killed_at.append(_committed(store))
        assert _visible_samples_match(store, reference) == []  # nothing half-written is visible
    assert len(killed_at) == KILL_ROUNDS and killed_at[-1] < 10, killed_at  # every kill landed mid-run
    assert ingest_main(["--catalog", str(catalog), "--dataset", "demo"]) == 0
    assert stores_equal(store, reference) == []
    assert validate_store(store).ok


_SUBSET_RUN = """
import json, sys
from flows.ingest import ingest_dataset
print(json.dumps(ingest_dataset(catalog=sys.argv[1], dataset="demo", only=json.loads(sys.argv[2]))))
"""


@pytest.mark.slow
def test_two_concurrent_ingests_of_different_subsets_lose_nothing(
        threaded_demo_store, tiny_demo_raw, tmp_path, prefect_server):
    _catalog, reference = threaded_demo_store
    store = tmp_path / "shared.zarr"
    catalog = write_catalog(tmp_path, {"demo": demo_entry(tiny_demo_raw, store)})
    ids = sorted(open_store(reference)["sample"].values)
    halves = [ids[0::2], ids[1::2]]
    procs = [subprocess.Popen([sys.executable, "-c", _SUBSET_RUN, str(catalog), json.dumps(half)],
                              cwd=PROJECT_ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
             for half in halves]
    outputs = [proc.communicate(timeout=600)[0] for proc in procs]
    counts = [json.loads(out.strip().splitlines()[-1]) for out in outputs]
    assert [c["ok"] for c in counts] == [5, 5], outputs
    assert stores_equal(store, reference) == []
    assert validate_store(store).ok and zarr.open_group(str(store), mode="r")["committed"].shape[0] == 10


@pytest.mark.slow
def test_bad_input_is_recorded_and_the_run_completes(tiny_demo_raw, shared_data, tmp_path, prefect_server):
    raw = tmp_path / "raw"
    (raw / "videos").mkdir(parents=True)
    (raw / "videos" / "corrupt.mp4").write_bytes(bytes(random.Random(0).randbytes(50_000)))
    shutil.copy(shared_data / "videos" / "no_face.mp4", raw / "videos" / "no_face.mp4")  # links may not leave the root
    good = next(p for p in sorted(tiny_demo_raw.glob("s01/*")) if p.is_dir())
    shutil.copytree(good, raw / "good")
    onset, apex, offset = 3, 8, 15
    sheet = tmp_path / "sheet.csv"
    sheet.write_text(
        "subject,clip,onset,apex,offset,emotion,aus,source\n"
        f"s01,good,{onset},{apex},{offset},happiness,6+12,good\n"
        "v1,corrupt,0,5,10,happiness,12,videos/corrupt.mp4\n"
        "v2,noface,0,10,40,surprise,1+2,videos/no_face.mp4\n"
        f"s09,missing_folder,{onset},{apex},{offset},disgust,9,s09/missing_folder\n"
        "s10,nowhere,1,2,3,disgust,9,\n"
    )
    store = tmp_path / "bad.zarr"
    catalog = write_catalog(tmp_path, {"bad": {
        "adapter": "generic_csv", "root": str(raw), "annotations": str(sheet), "store": str(store),
        "default_scheme": "casme2-5", "fps": 30,
        "options": {}}})
    code = ingest_main(["--catalog", str(catalog), "--dataset", "bad", "--config", str(_demo_config(tmp_path))])
    assert code == 1  # completed, with failures
    assert list(open_store(store)["sample"].values) == ["s01/good"]
    from stag_features.store.writer import slot_states

    failures = {sid: s for sid, s in slot_states(store).items() if s.failure_stage}
    assert {"v1/corrupt", "v2/noface", "s09/missing_folder", "s10/nowhere"} <= set(failures), failures
    assert failures["v2/noface"].failure_stage == "face"
    assert all(s.failure_reason for s in failures.values())
    assert validate_store(store).ok


def _demo_config(folder: Path) -> Path:
    path = folder / "pipeline.yaml"
    path.write_text("align: {crop_size: 96}\nselection: {k: 3}\ntvl1: {epsilon: 0.05}\nstore: {max_time: 64}\n")
    return path
