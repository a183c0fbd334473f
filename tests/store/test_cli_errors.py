"""Every command-line error is one line naming the input, never a traceback; a run folder holds one
run's files; counts of a store's slots add up."""
from __future__ import annotations

import subprocess
import sys

import pytest
import zarr

from stag_cli.fit import main as fit
from stag_cli.main import main as stag
from stag_features.store.writer import slot_states

from .conftest import PROJECT_ROOT, copy_store, write_catalog  # noqa: TID252


def _one_line(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    return err


@pytest.mark.parametrize(("argv", "says"), [
    (["--seeds", ","], "--seeds needs at least one integer"),
    (["--seeds", "1,x"], "--seeds takes integers separated by commas"),
    (["--folds", "1"], "--folds must be at least 2"),
])
def test_bad_flags_of_stag_fit(argv, says, capsys, tmp_path):
    with pytest.raises(SystemExit) as stopped:
        fit(["--store", str(tmp_path / "s.zarr"), "--scheme", "demo", *argv])
    assert stopped.value.code == 2 and says in _one_line(capsys)


def test_bad_json_of_a_config_file_gives_its_reason(capsys, tmp_path):
    bad = tmp_path / "model.json"
    bad.write_text('{"d_model": 32,}')
    with pytest.raises(SystemExit):
        fit(["--store", str(tmp_path / "s.zarr"), "--scheme", "demo", "--model-config", str(bad)])
    err = _one_line(capsys)
    assert str(bad) in err and "not valid JSON" in err and "line 1" in err
    bad.write_text("[1, 2]")
    with pytest.raises(SystemExit):
        fit(["--store", str(tmp_path / "s.zarr"), "--scheme", "demo", "--model-config", str(bad)])
    assert "must hold a JSON object" in _one_line(capsys)


def test_a_run_folder_holds_one_run(threaded_demo_store, tmp_path, capsys):
    _catalog, store = threaded_demo_store
    out = tmp_path / "run"
    args = ["--store", str(store), "--scheme", "demo", "--epochs", "1", "--parallel", "none", "--quiet",
            "--no-checkpoints", "--out", str(out)]
    assert fit(args) == 0
    (out / "leftover_from_before.txt").write_text("an earlier run's file")
    assert fit(args) == 2 and "not empty" in _one_line(capsys) and (out / "leftover_from_before.txt").exists()
    assert fit([*args, "--overwrite"]) == 0
    assert not (out / "leftover_from_before.txt").exists() and (out / "metrics.json").exists()
    assert not (out / "checkpoints").exists()


def test_unknown_sample_of_stag_inspect_is_one_line(threaded_demo_store, capsys, tmp_path):
    _catalog, store = threaded_demo_store
    assert stag(["inspect", "sample", str(store), "nobody/never", "--out", str(tmp_path / "x.png")]) == 2
    err = _one_line(capsys)
    assert "nobody/never" in err and str(store) in err


def test_an_empty_sheet_is_named(tmp_path, capsys):
    sheet = tmp_path / "empty.csv"
    sheet.write_text("")
    catalog = write_catalog(tmp_path, {"lab": {"adapter": "generic_csv", "root": str(tmp_path / "raw"),
                                               "annotations": str(sheet), "store": str(tmp_path / "lab.zarr")}})
    from stag_cli.ingest import ingest_main

    assert ingest_main(["--catalog", str(catalog), "--dataset", "lab"]) == 2
    assert f"annotation file {sheet} is empty" in _one_line(capsys)


def test_piping_stag_store_info_into_head_ends_quietly(threaded_demo_store):
    _catalog, store = threaded_demo_store
    pipeline = subprocess.run(f"{sys.executable} -m stag_cli.main store info {store} --config | head -n 1",
                              shell=True, cwd=PROJECT_ROOT, capture_output=True, text=True)
    assert pipeline.stdout.strip() == "{" and pipeline.stderr == ""


def test_info_counts_a_committed_sample_beside_a_failure_apart(threaded_demo_store, tmp_path, capsys):
    _catalog, reference = threaded_demo_store
    store = copy_store(reference, tmp_path / "demo.zarr")
    slot = sorted(s.slot for s in slot_states(store).values())[0]
    zarr.open_group(str(store), mode="r+")["failure_stage"][slot] = "face"  # inconsistent: committed and failed
    assert stag(["store", "info", str(store)]) == 0
    line = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("samples"))
    assert "9 committed, 0 failed, 0 pending" in line and "1 committed beside a recorded failure" in line
    from stag_features.store.query import open_store

    assert open_store(store).sizes["sample"] == 9  # readers do not serve it


def test_stag_main_is_runnable_as_a_module():
    """``python -m stag_cli.main`` (used above) is the ``stag`` command."""
    run = subprocess.run([sys.executable, "-m", "stag_cli.main", "--help"], cwd=PROJECT_ROOT, capture_output=True,
                         text=True)
    assert run.returncode == 0 and "store" in run.stdout
