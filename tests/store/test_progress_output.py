"""What the terminal shows: stag-ingest's and stag-fit's progress bars reach 100% with the run's
counts, and Prefect's own records stay out of the terminal (in the run's log file) unless
``--verbose``."""
from __future__ import annotations

import os
import re
import subprocess
import sys

from stag_features.store.query import open_store

from .conftest import PROJECT_ROOT, demo_entry, write_catalog  # noqa: TID252

# a Prefect log record as its console handler formats it: "12:01:53.183 | INFO    | Flow run 'x' - ..."
PREFECT_RECORD = re.compile(r"^\d\d:\d\d:\d\d\.\d{3} \| (DEBUG|INFO|WARNING|ERROR|CRITICAL)\s*\| ", re.M)


def _stag_ingest(*args: str) -> subprocess.CompletedProcess:
    """stag-ingest in a fresh process (Prefect imported and configured there, as for a user)."""
    return subprocess.run([sys.executable, "-m", "stag_cli.ingest", *args], cwd=PROJECT_ROOT, capture_output=True,
                          text=True, env=os.environ, timeout=600)


def test_ingest_bar_reaches_100_percent_and_prefect_records_go_to_the_log(tiny_demo_raw, tmp_path, prefect_server):
    store = tmp_path / "demo.zarr"
    catalog = write_catalog(tmp_path, {"demo": demo_entry(tiny_demo_raw, store)})
    run = _stag_ingest("--catalog", str(catalog), "--dataset", "demo")
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    total = open_store(store).sizes["sample"]
    bar = next(line for line in run.stdout.splitlines() if line.startswith("ingest demo ") and "%" in line)
    assert "100%" in bar and f"{total}/{total} samples" in bar and f"computed {total} failed 0 skipped 0" in bar, bar
    assert f"  computed       {total:>6}" in run.stdout
    terminal = run.stdout + run.stderr
    assert not PREFECT_RECORD.search(terminal) and "Flow run" not in terminal and "Task run" not in terminal, terminal
    logs = list((tmp_path / "demo.zarr.logs").glob("ingest-*.log"))
    assert len(logs) == 1 and f"Prefect's log of this run: {logs[0]}" in run.stdout
    logged = logs[0].read_text()
    assert PREFECT_RECORD.search(logged) and "Finished in state Completed" in logged
    assert f"{total}/{total} ok " in logged  # the per-sample lines are in the log
    assert not list((tmp_path / "demo.zarr.logs").glob("*.yml"))  # the logging config is removed at the end

    again = _stag_ingest("--catalog", str(catalog), "--dataset", "demo", "--force", "--verbose")
    assert again.returncode == 0, again.stdout[-2000:] + again.stderr[-2000:]
    lines = again.stdout.splitlines()
    assert sum(bool(re.match(rf"\d+/{total} ok \S+", line)) for line in lines) == total  # a line per sample
    assert PREFECT_RECORD.search(again.stdout + again.stderr)  # asked for: Prefect's records on the terminal
    assert "100%" in next(line for line in lines if line.startswith("ingest demo ") and "%" in line)


def test_fit_bar_reaches_100_percent_with_a_line_per_fold(threaded_demo_store, tmp_path, capsys):
    from stag_cli.fit import main

    _catalog, store = threaded_demo_store
    subjects = len(set(open_store(store)["subject"].values))
    epochs, seeds = 2, 2
    assert main(["--store", str(store), "--scheme", "demo", "--protocol", "loso", "--epochs", str(epochs),
                 "--seeds", "1,2", "--device", "cpu", "--parallel", "none", "--out", str(tmp_path / "run"),
                 "--no-checkpoints"]) == 0
    printed = capsys.readouterr().out
    total = subjects * seeds * epochs
    bar = next(line for line in printed.splitlines() if f"/{total} epochs" in line)
    assert "100%" in bar and f"{total}/{total} epochs" in bar and f"epoch {epochs}/{epochs} loss " in bar, bar
    for seed in (1, 2):
        assert sum(line.startswith(f"seed {seed} fold ") for line in printed.splitlines()) == subjects
    assert f"fold {subjects}/{subjects}" in printed
    assert not PREFECT_RECORD.search(printed)
