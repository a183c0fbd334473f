"""No process outlives stag-ingest: its own Prefect server and its Dask workers end with it however it
ends, a server left behind by a killed run is stopped by the next, and no telemetry is attempted."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from flows.local_server import SERVER_COMMAND, stop_orphaned_servers

from .conftest import PROJECT_ROOT, demo_entry, write_catalog  # noqa: TID252

START_TIMEOUT_S = 180


def _tagged(marker: str) -> list[tuple[int, str]]:
    """(pid, command line) of every live process whose environment carries ``marker``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if f"STAG_TEST_RUN={marker}".encode() in (entry / "environ").read_bytes():
                found.append((int(entry.name), (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()))
        except OSError:
            continue
    return found


def _command(catalog: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "stag_cli.ingest", "--catalog", str(catalog), "--dataset", "demo", *extra]


def _environment(tmp_path: Path, marker: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("PREFECT_API_URL", "PREFECT_SERVER_ANALYTICS_ENABLED", "DO_NOT_TRACK")}
    return {**env, "STAG_TEST_RUN": marker, "PREFECT_HOME": str(tmp_path / "prefect-home")}


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc").is_dir(), reason="reads /proc")
def test_sigkill_of_stag_ingest_leaves_no_process(tiny_demo_raw, tmp_path):
    """SIGKILL once its server and both workers run: nothing of the run is left; the rerun then completes
    the store, prints no telemetry or log-sending error, and leaves nothing either."""
    marker = uuid.uuid4().hex
    catalog = write_catalog(tmp_path, {"demo": demo_entry(tiny_demo_raw, tmp_path / "demo.zarr")})
    env = _environment(tmp_path, marker)
    log = (tmp_path / "killed.log").open("w")
    run = subprocess.Popen(_command(catalog, "--workers", "2"), cwd=PROJECT_ROOT, env=env, stdout=log,
                           stderr=subprocess.STDOUT)
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline and run.poll() is None:
        commands = [c for _, c in _tagged(marker)]
        if any(SERVER_COMMAND in c for c in commands) and sum("forkserver" in c for c in commands) >= 3:
            break  # the server, the fork server and its two workers
        time.sleep(0.2)
    assert run.poll() is None, (tmp_path / "killed.log").read_text()[-2000:]
    run.send_signal(signal.SIGKILL)
    run.wait()
    deadline = time.monotonic() + 30
    while _tagged(marker) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert _tagged(marker) == []
    rerun = subprocess.run(_command(catalog), cwd=PROJECT_ROOT, env=env, capture_output=True, text=True,
                           timeout=600)
    assert rerun.returncode == 0, rerun.stdout[-2000:] + rerun.stderr[-2000:]
    assert "telemetry" not in (rerun.stdout + rerun.stderr).lower()
    assert "Error logging to API" not in rerun.stdout + rerun.stderr  # logs sent before its server stopped
    time.sleep(1)
    assert _tagged(marker) == []


def test_a_server_whose_owner_is_gone_is_stopped_by_the_next_run(tmp_path):
    """A recorded server whose owner died (where the kernel could not end it) is stopped; one whose owner
    lives is left alone."""
    home = tmp_path / "home"
    (home / "stag-servers").mkdir(parents=True)
    sleeper = f"import time; time.sleep(120)  # {SERVER_COMMAND}"
    orphan = subprocess.Popen([sys.executable, "-c", sleeper], start_new_session=True)
    kept = subprocess.Popen([sys.executable, "-c", sleeper], start_new_session=True)
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    (home / "stag-servers" / f"{orphan.pid}.pid").write_text(f"{orphan.pid} {gone.pid}")
    (home / "stag-servers" / f"{kept.pid}.pid").write_text(f"{kept.pid} {os.getpid()}")
    try:
        assert stop_orphaned_servers(home) == [orphan.pid]
        assert orphan.wait(timeout=10) == -signal.SIGTERM
        assert kept.poll() is None and (home / "stag-servers" / f"{kept.pid}.pid").exists()
        assert not (home / "stag-servers" / f"{orphan.pid}.pid").exists()
    finally:
        for process in (orphan, kept):
            if process.poll() is None:
                process.kill()
                process.wait()
