"""SIGKILL of stag-ingest at random points, each followed by a rerun (issue 22, "Kill").

For the project's 50-clip demo dataset this script

  1. ingests it once, uninterrupted, into a reference store (the real CLI,
     ``python -m stag_cli.ingest --catalog C --dataset demo``, which starts its
     own Prefect server), noting when it committed its last sample;
  2. for each of ``--points`` kill points drawn uniformly from 0.5 s to that
     moment (seeded): starts the same command on an empty store, SIGKILLs it
     then, counts the processes of the run still alive 10 s later, reruns the
     command to completion, and then
       - compares every committed sample of the final store with the reference,
         array by array (bit-equal; NaN equal to NaN),
       - runs ``validate_store(deep=True)`` on it,
       - counts the processes of either run still alive (their environment
         carries a marker; the server, fork server and Dask workers included).

A point "survived" when the rerun exits 0, the store equals the reference, it
validates, and nothing is left running. Every process the script starts carries
``STAG_KILL_RUN=<uuid>`` so that no other process on the machine is counted.

    python benchmarks/kill_points.py                  # 20 points, seed 0
    python benchmarks/kill_points.py --points 10 --workers 2 --name kill_points_workers2
    python benchmarks/kill_points.py --points 3 --demo-subjects 1
"""
from __future__ import annotations

import argparse
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from benchmarks._common import PROJECT_ROOT, LoadSampler, quiet_prefect_env, write_results  # noqa: E402
from benchmarks._inputs import write_bench_catalog  # noqa: E402
from benchmarks._stores import store_differences  # noqa: E402

MARKER = "STAG_KILL_RUN"
SETTLE_S = 10.0  # how long killed processes get to go before they count as left behind
RUN_TIMEOUT_S = 1800
EXTRA: list[str] = []  # stag-ingest options of every run (--workers N)


def run_processes(marker: str) -> list[str]:
    """Command lines of the live processes whose environment carries ``marker``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            if f"{MARKER}={marker}".encode() in (entry / "environ").read_bytes():
                found.append((entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()[:160])
        except OSError:
            continue
    return found


def committed_count(store: Path) -> int:
    import zarr

    try:
        return int(np.asarray(zarr.open_group(str(store), mode="r")["committed"][:]).sum())
    except Exception:  # noqa: BLE001 - no store yet, or one being created
        return 0


def ingest(catalog: Path, env: dict, log: Path) -> subprocess.Popen:
    command = [sys.executable, "-m", "stag_cli.ingest", "--catalog", str(catalog), "--dataset", "demo", *EXTRA]
    with log.open("w") as handle:
        return subprocess.Popen(command, cwd=PROJECT_ROOT, env=env, stdout=handle, stderr=subprocess.STDOUT)


def kill_point(index: int, at_s: float, folder: Path, demo: dict, reference: Path, env: dict, marker: str) -> dict:
    """One kill at ``at_s`` seconds into a fresh ingest, then a rerun; what survived."""
    from stag_features.store.validate import validate_store

    point = folder / f"point{index:02d}"
    catalog = write_bench_catalog(point, demo=demo)
    store = point / "demo.zarr"
    run = ingest(catalog, env, point / "killed.log")
    start = time.monotonic()
    while run.poll() is None and time.monotonic() - start < at_s:
        time.sleep(0.02)
    finished_before_kill = run.poll() is not None
    run.send_signal(signal.SIGKILL)
    run.wait()
    at_kill = committed_count(store)
    time.sleep(SETTLE_S)
    left_after_kill = run_processes(marker)
    rerun_start = time.monotonic()
    rerun = ingest(catalog, env, point / "rerun.log")
    rc = rerun.wait(timeout=RUN_TIMEOUT_S)
    rerun_s = time.monotonic() - rerun_start
    time.sleep(2.0)
    left_after_rerun = run_processes(marker)
    differ = store_differences(store, reference) if rc == 0 else ["rerun failed"]
    report = validate_store(store, deep=True)
    survived = rc == 0 and not differ and report.ok and not left_after_rerun
    result = {"kill_at_s": round(at_s, 2), "finished_before_kill": finished_before_kill,
              "committed_at_kill": at_kill, "processes_left_after_kill": len(left_after_kill),
              "rerun_rc": rc, "rerun_s": round(rerun_s, 1), "arrays_differing": differ,
              "validate_ok": report.ok, "processes_left_after_rerun": left_after_rerun, "survived": survived}
    print(f"point {index:2d}: kill at {at_s:6.1f} s ({at_kill:2d} committed), rerun rc {rc} in {rerun_s:5.1f} s, "
          f"{'equal' if not differ else 'DIFFERS ' + ','.join(differ)}, validate {'ok' if report.ok else 'FAILED'}, "
          f"left {len(left_after_kill)}/{len(left_after_rerun)} -> {'survived' if survived else 'LOST'}", flush=True)
    if survived:
        shutil.rmtree(point)
    return result



def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--points", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--demo-subjects", type=int, default=5)
    parser.add_argument("--demo-clips-per-emotion", type=int, default=2)
    parser.add_argument("--workers", type=int, help="stag-ingest --workers N (default: its threaded runner)")
    parser.add_argument("--name", default="kill_points")
    args = parser.parse_args(argv)
    EXTRA[:] = ["--workers", str(args.workers)] if args.workers else []
    demo = {"n_subjects": args.demo_subjects, "clips_per_emotion": args.demo_clips_per_emotion, "seed": 0}

    folder = Path(tempfile.mkdtemp(prefix="stag-kill-"))
    marker = uuid.uuid4().hex
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
    env.update(quiet_prefect_env(folder / "prefect-home"), **{MARKER: marker})
    with LoadSampler() as load:
        catalog = write_bench_catalog(folder / "reference", demo=demo)
        reference = folder / "reference" / "demo.zarr"
        start = time.monotonic()
        run, last_commit_s, seen = ingest(catalog, env, folder / "reference.log"), 0.0, 0
        while run.poll() is None:
            if (now := committed_count(reference)) > seen:
                seen, last_commit_s = now, time.monotonic() - start
            time.sleep(0.1)
        if run.wait() != 0:
            print((folder / "reference.log").read_text()[-3000:])
            return 1
        full_s = time.monotonic() - start
        print(f"uninterrupted ingest: {full_s:.1f} s, {committed_count(reference)} samples, the last committed "
              f"at {last_commit_s:.1f} s", flush=True)
        rng = random.Random(args.seed)
        points = sorted(rng.uniform(0.5, last_commit_s) for _ in range(args.points))
        results = [kill_point(i, at, folder, demo, reference, env, marker) for i, at in enumerate(points)]
    survived = sum(r["survived"] for r in results)
    figures = {"dataset": demo, "ingest_options": EXTRA, "uninterrupted_s": round(full_s, 1), "last_commit_s": round(last_commit_s, 1),
               "points": len(results),
               "survived": survived, "lost": len(results) - survived,
               "killed_before_all_committed": sum(r["committed_at_kill"] < seen for r in results),
               "processes_left_after_kill": sum(r["processes_left_after_kill"] for r in results),
               "processes_left_after_rerun": sum(len(r["processes_left_after_rerun"]) for r in results),
               "per_point": results}
    print(f"{survived}/{len(results)} kill points survived (stores equal, valid, no process left)")
    write_results(args.name, figures, load, notes=[f"scratch folder {folder} (kept points: the lost ones)"])
    return 0 if survived == len(results) else 1


if __name__ == "__main__":
    sys.exit(main())
