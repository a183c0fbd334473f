"""A Prefect API server on 127.0.0.1 for the length of a ``with`` block.

Dask task runners and schedules (``flow.serve``) need a running server; tests
and benchmarks start one with this instead of relying on Prefect's temporary
per-process server. Users run ``prefect server start`` themselves (README).

``stag-ingest`` without a server (no PREFECT_API_URL) starts its own with
``owned=True`` instead of Prefect's temporary one, which outlived the command
when it was killed: the server gets SIGTERM from the kernel when the command's
process dies for any reason (Linux ``PR_SET_PDEATHSIG``), and it is recorded in
``$PREFECT_HOME/stag-servers/`` so that the next run stops one whose owner is
gone (``stop_orphaned_servers``) where that signal does not exist.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

HOST = "127.0.0.1"
POLL_INTERVAL_S = 0.5
HEALTH_TIMEOUT_S = 2
STOP_TIMEOUT_S = 20


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


PR_SET_PDEATHSIG = 1  # prctl option (linux/prctl.h)
SERVER_COMMAND = "prefect server start"
QUIET = {"PREFECT_SERVER_ANALYTICS_ENABLED": "false", "DO_NOT_TRACK": "1"}  # unless the user set them


def die_with_parent() -> None:
    """This process gets SIGTERM when the process that started it dies, however (Linux only)."""
    try:
        ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG,
                                                                                       signal.SIGTERM)
    except (OSError, AttributeError):
        pass  # elsewhere the next run's stop_orphaned_servers stops it


def _records(home: Path) -> Path:
    return home / "stag-servers"


def stop_orphaned_servers(home: Path) -> list[int]:
    """Stop the servers recorded in ``home`` whose owning process is gone; returns their pids."""
    stopped = []
    folder = _records(home)
    for record in sorted(folder.glob("*.pid")) if folder.is_dir() else []:
        try:
            server, owner = (int(v) for v in record.read_text().split())
        except ValueError:
            record.unlink(missing_ok=True)
            continue
        if _alive(owner):
            continue
        if _alive(server) and SERVER_COMMAND in _command_line(server):
            try:
                os.killpg(server, signal.SIGTERM)
                stopped.append(server)
            except ProcessLookupError:
                pass
        record.unlink(missing_ok=True)
    return stopped


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _command_line(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return SERVER_COMMAND  # no /proc: trust the record


def prefect_home(env: dict[str, str] | None = None) -> Path:
    """PREFECT_HOME of ``env`` (default: this process's environment), as Prefect resolves it."""
    value = (env if env is not None else os.environ).get("PREFECT_HOME")
    return Path(value).expanduser() if value else Path.home() / ".prefect"


class PrefectServer:
    """``prefect server start`` on 127.0.0.1 at a free port, started at once (``start``), healthy after
    ``wait`` (so that the caller's own start-up overlaps the server's), stopped with its children by
    ``stop``. ``owned``: it also dies with this process and is recorded for ``stop_orphaned_servers``."""

    def __init__(self, log_path: Path, env: dict[str, str] | None = None, owned: bool = False):
        self.port = free_port()
        self.url = f"http://{HOST}:{self.port}/api"
        self.log_path, self.owned = log_path, owned
        self.env = {**QUIET, **{k: v for k, v in (env if env is not None else os.environ).items()
                                if k != "PREFECT_API_URL"}}
        self.process: subprocess.Popen | None = None
        self.record: Path | None = None

    def start(self) -> "PrefectServer":
        with open(self.log_path, "w") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "prefect", "server", "start", "--host", HOST, "--port", str(self.port)],
                env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                preexec_fn=die_with_parent if self.owned else None,
            )
        if self.owned:
            self.record = _records(prefect_home(self.env)) / f"{self.process.pid}.pid"
            self.record.parent.mkdir(parents=True, exist_ok=True)
            self.record.write_text(f"{self.process.pid} {os.getpid()}")
        return self

    def wait(self, timeout_s: float = 120.0) -> str:
        """Block until the server answers its health check; its API URL."""
        deadline = time.monotonic() + timeout_s
        while not _healthy(self.url):
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"Prefect server did not start on port {self.port}; see {self.log_path}")
            time.sleep(POLL_INTERVAL_S)
        return self.url

    def stop(self) -> None:
        if self.process is not None:
            _stop(self.process)
        if self.record is not None:
            self.record.unlink(missing_ok=True)

    def __enter__(self) -> "PrefectServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


@contextmanager
def local_prefect_server(log_path: Path, env: dict[str, str] | None = None,
                         start_timeout_s: float = 120.0, owned: bool = False) -> Iterator[str]:
    """A ``PrefectServer`` for the ``with`` block, its API URL yielded once it answers (for
    PREFECT_API_URL). ``env``: the server's environment (default: this process's; telemetry off
    unless set); its log goes to ``log_path``."""
    with PrefectServer(log_path, env, owned) as server:
        yield server.wait(start_timeout_s)


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/health", timeout=HEALTH_TIMEOUT_S) as response:
            return response.status == 200
    except OSError:
        return False


def _stop(process: subprocess.Popen) -> None:
    """SIGTERM to the server's own session (it and its children only), SIGKILL if it lingers."""
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=STOP_TIMEOUT_S)
    except ProcessLookupError:
        return
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
