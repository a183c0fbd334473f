"""A Prefect API server on 127.0.0.1 for the length of a ``with`` block.

Dask task runners and schedules (``flow.serve``) need a running server; tests
and benchmarks start one with this instead of relying on Prefect's temporary
per-process server. Users run ``prefect server start`` themselves (README).
"""
from __future__ import annotations

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


@contextmanager
def local_prefect_server(log_path: Path, env: dict[str, str] | None = None,
                         start_timeout_s: float = 120.0) -> Iterator[str]:
    """Start ``prefect server start`` on 127.0.0.1 at a free port, wait until
    its health endpoint answers, yield its API URL (for PREFECT_API_URL), and
    stop it and its children afterwards. ``env`` is the server's environment
    (default: this process's); the server's log goes to ``log_path``."""
    port = free_port()
    url = f"http://{HOST}:{port}/api"
    server_env = {k: v for k, v in (env if env is not None else os.environ).items() if k != "PREFECT_API_URL"}
    with open(log_path, "w") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "prefect", "server", "start", "--host", HOST, "--port", str(port)],
            env=server_env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )
        try:
            deadline = time.monotonic() + start_timeout_s
            while not _healthy(url):
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"Prefect server did not start on port {port}; see {log_path}")
                time.sleep(POLL_INTERVAL_S)
            yield url
        finally:
            _stop(process)


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
