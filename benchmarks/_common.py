"""Shared plumbing of the benchmark scripts: machine facts, load sampling,
timing, peak memory of a process tree, a Prefect server, and the results JSON
(the benchmarks' inputs: `benchmarks/_inputs.py`).

Every script writes ``benchmarks/results/<name>.json`` through
``write_results``, which records the machine (cores, memory, CPU model,
Python / torch / OpenCV / zarr / numpy versions), the command, the UTC date,
the git commit, and the load average before and after the run (plus the 1-min
load sampled during it): figures from a busy machine must say so.
"""
from __future__ import annotations

import json
import os
import platform
import shlex
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Iterator

PROJECT_ROOT = Path(__file__).resolve().parents[1]
RESULTS_DIR = Path(__file__).resolve().parent / "results"
SHARED_DATA = PROJECT_ROOT.parent / "shared" / "data"
VIDEOS = SHARED_DATA / "videos"

if str(PROJECT_ROOT) not in sys.path:  # run as `python benchmarks/x.py` from anywhere
    sys.path.insert(0, str(PROJECT_ROOT))


def quiet_prefect_env(home: Path | None = None) -> dict[str, str]:
    """Environment for Prefect runs that never touch the user's Prefect home."""
    home = home or Path(tempfile.mkdtemp(prefix="stag-bench-prefect-"))
    return {"PREFECT_HOME": str(home), "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "DO_NOT_TRACK": "1"}


# -- timing and load --------------------------------------------------------------


class LoadSampler:
    """Samples the 1-minute load average every ``every`` seconds while running."""

    def __init__(self, every: float = 5.0):
        self.every, self.samples = every, []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.samples.append(round(os.getloadavg()[0], 2))
            self._stop.wait(self.every)

    def __enter__(self) -> "LoadSampler":
        self.before = [round(x, 2) for x in os.getloadavg()]
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.after = [round(x, 2) for x in os.getloadavg()]

    def summary(self) -> dict:
        s = self.samples or [self.before[0]]
        return {"before_1_5_15": self.before, "after_1_5_15": getattr(self, "after", None),
                "during_1min_mean": round(statistics.fmean(s), 2), "during_1min_max": max(s), "n_samples": len(s)}


@contextmanager
def timed(into: dict, key: str) -> Iterator[None]:
    """Adds the block's wall seconds to ``into[key]``."""
    start = time.perf_counter()
    try:
        yield
    finally:
        into[key] = into.get(key, 0.0) + time.perf_counter() - start


def repeat_min(fn: Callable[[], object], repeats: int) -> tuple[float, list[float]]:
    """Minimum and all wall times of ``repeats`` calls (the minimum is the least disturbed run)."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times), times


@dataclass
class TreeRun:
    """A subprocess run with the wall time, the peak RSS of its whole process tree, and its CPU time:
    of the whole tree and of the root process alone (its last sample, up to ``poll_s`` before it
    exits). The tree's CPU is the larger of two counts: every descendant reaped by its parent
    (exact, e.g. spawned Dask workers), and the sum over every process seen in the tree of its
    last sample (counts a fork server and its workers, which nobody in the tree reaps)."""

    returncode: int
    wall_s: float
    peak_tree_rss_mb: float
    peak_single_rss_mb: float
    stdout: str = ""
    stderr: str = ""
    extra: dict = field(default_factory=dict)
    cpu_tree_s: float = 0.0
    cpu_root_s: float = 0.0


def _children_cpu_s() -> float:
    """User + system CPU seconds of this process's reaped descendants so far."""
    import resource

    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def process_cpu_s(processes) -> float:
    """User + system CPU seconds of live ``psutil.Process``es (those gone count 0)."""
    import psutil

    total = 0.0
    for process in processes:
        try:
            times = process.cpu_times()
            total += times.user + times.system
        except psutil.Error:
            pass
    return total


def run_tree(cmd: list[str], env: dict[str, str] | None = None, cwd: Path | None = None, poll_s: float = 0.2,
             timeout_s: float | None = None) -> TreeRun:
    """Run ``cmd``; sample the RSS of it and all its descendants every ``poll_s``."""
    import psutil

    full_env = {**os.environ, **(env or {})}
    cpu_before = _children_cpu_s()
    root_cpu = 0.0
    last_cpu: dict[tuple[int, float], float] = {}  # (pid, create time) -> user + system at its last sample
    start = time.perf_counter()
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        proc = subprocess.Popen(cmd, env=full_env, cwd=str(cwd or PROJECT_ROOT), stdout=out, stderr=err)
        peak_tree = peak_single = 0.0
        try:
            root = psutil.Process(proc.pid)
            while proc.poll() is None:
                root_cpu = process_cpu_s([root]) or root_cpu
                try:
                    procs = [root] + root.children(recursive=True)
                    rss = []
                    for p in procs:
                        try:
                            rss.append(p.memory_info().rss)
                            times = p.cpu_times()
                            last_cpu[(p.pid, p.create_time())] = times.user + times.system
                        except (psutil.NoSuchProcess, psutil.AccessDenied):
                            pass
                    peak_tree = max(peak_tree, sum(rss))
                    peak_single = max(peak_single, max(rss, default=0))
                except psutil.NoSuchProcess:
                    pass
                if timeout_s and time.perf_counter() - start > timeout_s:
                    proc.kill()
                    break
                try:  # returns as soon as the process ends: the wall time is not rounded up to poll_s
                    proc.wait(timeout=poll_s)
                except subprocess.TimeoutExpired:
                    pass
        finally:
            proc.wait()
        wall = time.perf_counter() - start
        out.seek(0)
        err.seek(0)
        return TreeRun(proc.returncode, wall, peak_tree / 2**20, peak_single / 2**20, out.read(), err.read(),
                       cpu_tree_s=max(_children_cpu_s() - cpu_before, sum(last_cpu.values())), cpu_root_s=root_cpu)


def peak_rss_mb() -> float:
    """Peak RSS of this process so far (ru_maxrss, kB on Linux)."""
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# -- machine and results -----------------------------------------------------------


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _version(module: str) -> str:
    try:
        mod = __import__(module)
        return str(getattr(mod, "__version__", "?"))
    except Exception:  # noqa: BLE001 - a missing library is reported, not fatal
        return "not installed"


def git_commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=PROJECT_ROOT, capture_output=True,
                              text=True, timeout=10).stdout.strip() or "unknown"
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"


def machine_info() -> dict:
    import psutil

    return {
        "cores_logical": os.cpu_count(),
        "cores_physical": psutil.cpu_count(logical=False),
        "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "cpu_model": _cpu_model(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "torch": _version("torch"),
        "opencv": _version("cv2"),
        "zarr": _version("zarr"),
        "numcodecs": _version("numcodecs"),
        "numpy": _version("numpy"),
        "dask": _version("dask"),
        "prefect": _version("prefect"),
    }


def command_line() -> str:
    return "python " + " ".join(shlex.quote(a) for a in [os.path.relpath(sys.argv[0], PROJECT_ROOT), *sys.argv[1:]])


def write_results(name: str, figures: dict, load: LoadSampler | dict | None, notes: list[str] | None = None) -> Path:
    """benchmarks/results/<name>.json with the machine, command, date, commit and load."""
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    doc = {
        "benchmark": name,
        "date_utc": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "command": command_line(),
        "git_commit": git_commit(),
        "machine": machine_info(),
        "load_average": load.summary() if isinstance(load, LoadSampler) else load,
        "notes": notes or [],
        "figures": figures,
    }
    path = RESULTS_DIR / f"{name}.json"
    path.write_text(json.dumps(doc, indent=2, default=_json_default) + "\n")
    print(f"\nwrote {path.relative_to(PROJECT_ROOT)}")
    return path


def _json_default(value):
    import numpy as np

    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating,)):
        return float(value)
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def table(rows: list[dict], columns: list[str] | None = None, floatfmt: str = "{:.3f}") -> str:
    """A plain text table of dict rows (columns: the first row's keys by default)."""
    if not rows:
        return "(no rows)"
    columns = columns or list(rows[0])

    def cell(v) -> str:
        if isinstance(v, float):
            return floatfmt.format(v)
        return str(v)

    cells = [[cell(r.get(c, "")) for c in columns] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(columns)]
    lines = ["  ".join(c.rjust(w) for c, w in zip(columns, widths)), "  ".join("-" * w for w in widths)]
    lines += ["  ".join(v.rjust(w) for v, w in zip(row, widths)) for row in cells]
    return "\n".join(lines)


def scratch_dir(prefix: str, keep: Path | None = None) -> Path:
    """A fresh scratch folder outside the repository (or ``keep`` when given, created)."""
    if keep is not None:
        keep.mkdir(parents=True, exist_ok=True)
        return keep
    SCRATCH_BASE.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=f"{prefix}-", dir=SCRATCH_BASE))


SCRATCH_BASE = Path(tempfile.gettempdir()) / "stag-bench"


# -- a Prefect server for the benchmark's flow runs --------------------------------------


@contextmanager
def prefect_server(home: Path, timeout_s: float = 120.0) -> Iterator[dict[str, str]]:
    """A Prefect server on 127.0.0.1 (its own PREFECT_HOME) for the block; yields the env that
    points flow runs at it."""
    from flows.local_server import local_prefect_server

    quiet = quiet_prefect_env(home)
    with local_prefect_server(home / "server.log", {**os.environ, **quiet}, timeout_s) as url:
        yield {**quiet, "PREFECT_API_URL": url}


# task runs of an ingest flow that are not its work: planning
SETUP_TASK_RUNS = ("prepare-ingest",)
API_PAGE = 200  # task runs per request (the server's default limit)


def _api_post(api_url: str, route: str, body: dict) -> list[dict]:
    from urllib.request import Request, urlopen

    request = Request(f"{api_url.rstrip('/')}/{route}", data=json.dumps(body).encode(),
                      headers={"Content-Type": "application/json"}, method="POST")
    with urlopen(request, timeout=30) as response:
        return json.loads(response.read())


def _epoch_s(stamp: str) -> float:
    return datetime.fromisoformat(stamp).timestamp()


def flow_run_timeline(api_url: str, started: float, ended: float) -> dict | None:
    """When the work of the latest flow run on the server began and ended, from its task runs' start and end
    times, relative to a command that ran from ``started`` to ``ended`` (epoch seconds): None if no flow run
    began in that window (the fast path). Work = every task run but planning (``SETUP_TASK_RUNS``)."""
    runs = _api_post(api_url, "flow_runs/filter", {"sort": "START_TIME_DESC", "limit": 1})
    if not runs or not runs[0].get("start_time") or _epoch_s(runs[0]["start_time"]) < started:
        return None
    flow_run, tasks = runs[0], []
    while True:
        page = _api_post(api_url, "task_runs/filter", {"flow_runs": {"id": {"any_": [flow_run["id"]]}},
                                                       "limit": API_PAGE, "offset": len(tasks)})
        tasks += page
        if len(page) < API_PAGE:
            break
    work = [t for t in tasks if t.get("start_time") and t.get("end_time") and not t["name"].startswith(SETUP_TASK_RUNS)]
    if not work:
        return None
    first = min(_epoch_s(t["start_time"]) for t in work)
    last = max(_epoch_s(t["end_time"]) for t in work)
    return {"work_tasks": len(work), "before_work_s": first - started, "work_span_s": last - first,
            "after_work_s": ended - last, "flow_run_s": _epoch_s(flow_run["end_time"]) - _epoch_s(flow_run["start_time"])
            if flow_run.get("end_time") else None}
