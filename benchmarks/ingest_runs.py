"""Whole ingest runs: stag vs the naive loop, 1 vs 2 workers, and the cached rerun
(issue 8, items 3, 4, 5 and the peak memory of ingest).

For each dataset (``real``: the video windows; ``demo``: the synthetic demo set)
this runs, each in a fresh process and in this order:

  naive    benchmarks/naive_reference.py on the same clips, same TV-L1 parameters
           and crop size (TV-L1 onset -> every frame; serial; one process)
  stag     the real CLI, ``python -m stag_cli.ingest --catalog C --dataset D --workers N``
           (Prefect flow, local Dask cluster of N worker processes), into an empty store
  rerun    the same command again: every sample is committed with matching hashes,
           so stag-ingest takes its fast path (plans read-only, prints the summary,
           never imports Prefect)
  pairs    ``--scaling-pairs`` - 1 more first runs with 1 then 2 workers; the 2-vs-1
           speed-up is the median over the pairs (the main runs are the first pair),
           each a ratio of two runs made one after the other

Wall times are of the whole command (Python start, imports, Prefect flow, Dask
cluster start, work, summary); ``flow_s`` is the time the flow itself reports.
``timeline`` splits a first run from the task runs the Prefect server recorded:
the seconds before its first work task began, the work (first task start to
last task end) and the seconds after the last one ended; ``speedup_work_span``
is the speed-up of the work alone.
Peak memory is the largest summed RSS of the command's process tree (Dask
workers included), sampled every 0.2 s. The flows report to a Prefect server
this script starts on 127.0.0.1 (Dask runs need one); its start-up is not timed.
The demo frames are generated before anything is timed.

    python benchmarks/ingest_runs.py                        # real clips + the 50-clip demo, workers 1 and 2
    python benchmarks/ingest_runs.py --datasets demo --demo-subjects 1 --demo-clips-per-emotion 1
    python benchmarks/ingest_runs.py --datasets real --pairs-per-task 0 --no-naive --name smoke_nosplit

``--pairs-per-task`` / ``--split-min-share`` set the run's ``execution`` section
(how long clips are split into TV-L1 pair tasks; PipelineConfig defaults when
absent) through a pipeline YAML passed with ``--config``: execution-only, so
the store and its config hash are those of the default run.
"""
from __future__ import annotations

import argparse
import json
import re
import shutil
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import psutil  # noqa: E402

from benchmarks._common import (  # noqa: E402
    LoadSampler,
    flow_run_timeline,
    prefect_server,
    process_cpu_s,
    run_tree,
    scratch_dir,
    table,
    write_results,
)
from benchmarks._inputs import DEMO_DEFAULTS, REAL_CLIPS, resolve_clip, write_bench_catalog  # noqa: E402

STAG_TIMEOUT_S = 900  # a hung run is killed and reported by its return code
# what stag-ingest imports before it knows whether the flow must run (the fast path's floor)
FAST_PATH_MODULES = "stag_cli.ingest, stag_features.ingest.steps"
_FLOW_LINE = re.compile(r"ingest \S+ -> \S+ \(([\d.]+) s\)")
# the summary's count lines (stag_features.ingest.plan.RunSummary): "  computed   12   ..."
_COUNT_LINE = re.compile(r"^\s+(computed|reused|failed|failed earlier)\s+(\d+)\b", re.M)


def _parse_cli(text: str) -> dict:
    out = {}
    if m := _FLOW_LINE.search(text):
        out["flow_s"] = float(m.group(1))
    counts = {name: int(value) for name, value in _COUNT_LINE.findall(text)}
    if counts:  # the keys the recorded results use: ok = computed, skipped = reused + failed earlier
        out["ok"], out["failed"] = counts.get("computed", 0), counts.get("failed", 0)
        out["skipped"] = counts.get("reused", 0) + counts.get("failed earlier", 0)
    stages = dict(re.findall(r"^\s+(decode|face|align|motion|tvl1|strain|rois|aus|graph)\s+([\d.]+)$", text, re.M))
    if stages:
        out["stage_s_summed"] = {k: float(v) for k, v in stages.items()}
    return out


def run_stag(catalog: Path, dataset: str, workers: int | None, env: dict, server: list,
             config: Path | None = None) -> dict:
    """One stag-ingest command: wall time, memory, parsed summary, and CPU seconds by process: the
    command's own process (flow engine, Dask scheduler and nannies), its descendants (Dask workers)
    and the Prefect server (``server``: its processes). ``config``: a pipeline YAML (--config)."""
    cmd = [sys.executable, "-m", "stag_cli.ingest", "--catalog", str(catalog), "--dataset", dataset]
    if config is not None:
        cmd += ["--config", str(config)]
    if workers:
        cmd += ["--workers", str(workers)]
    server_before = process_cpu_s(server)
    started = time.time()
    run = run_tree(cmd, env=env, timeout_s=STAG_TIMEOUT_S)
    timeline = flow_run_timeline(env["PREFECT_API_URL"], started, started + run.wall_s)
    cpu = {"command_tree_s": run.cpu_tree_s, "flow_process_s": run.cpu_root_s,
           "workers_s": max(0.0, run.cpu_tree_s - run.cpu_root_s), "server_s": process_cpu_s(server) - server_before}
    parsed = _parse_cli(run.stdout + "\n" + run.stderr)
    if run.returncode != 0 or "ok" not in parsed:
        print(run.stdout[-3000:], run.stderr[-3000:], sep="\n")
    return {"wall_s": run.wall_s, "returncode": run.returncode, "peak_tree_rss_mb": run.peak_tree_rss_mb,
            "peak_single_rss_mb": run.peak_single_rss_mb, "cpu_s": cpu,
            "fast_path": "no flow run started" in run.stdout, **({"timeline": timeline} if timeline else {}), **parsed}


def scaling_pair(one: dict, two: dict) -> dict:
    """A 1-worker and a 2-worker first run, one after the other: their times and speed-ups, and the
    speed-up of the work alone (first task start to last task end; ``flow_run_timeline``)."""
    nan = float("nan")
    spans = [run.get("timeline", {}).get("work_span_s", nan) for run in (one, two)]
    return {"workers_1_wall_s": one["wall_s"], "workers_2_wall_s": two["wall_s"],
            "workers_1_flow_s": one.get("flow_s", nan), "workers_2_flow_s": two.get("flow_s", nan),
            "workers_1_work_span_s": spans[0], "workers_2_work_span_s": spans[1],
            "speedup_wall": one["wall_s"] / two["wall_s"], "speedup_flow": one.get("flow_s", nan) / two.get("flow_s", nan),
            "speedup_work_span": spans[0] / spans[1],
            "all_ok": one["returncode"] == 0 and two["returncode"] == 0}


def run_naive(jobs: list[str], kind: str, out: Path, pipeline: dict, env: dict) -> dict:
    cmd = [sys.executable, str(Path(__file__).with_name("naive_reference.py")), "--out", str(out),
           "--pipeline-json", json.dumps(pipeline), f"--{kind}", *jobs]
    run = run_tree(cmd, env=env)
    lines = [json.loads(line) for line in run.stdout.splitlines() if line.startswith("{")]
    if run.returncode != 0 or not lines or "total" not in lines[-1]:
        print(run.stdout[-3000:], run.stderr[-3000:], sep="\n")
        raise RuntimeError("the naive reference failed")
    total = lines[-1]["total"]
    return {"wall_s": run.wall_s, "peak_tree_rss_mb": run.peak_tree_rss_mb, **total, "per_clip": lines[:-1]}


def execution_config(entry, folder: Path, execution: dict) -> Path | None:
    """A pipeline YAML: the entry's config with ``execution`` overrides (None when there are none)."""
    import yaml

    from stag_features.ingest.steps import entry_pipeline_config

    if not execution:
        return None
    config = entry_pipeline_config(entry).with_overrides(execution=execution)
    path = folder / f"pipeline_{entry.name}.yaml"
    path.write_text(yaml.safe_dump(config.model_dump(mode="json", by_alias=True), sort_keys=False))
    return path


def demo_jobs(entry) -> tuple[list[str], list]:
    """Naive jobs ``folder:onset:offset+1`` for every demo record (the range stag analyses)."""
    from stag_features.adapters import load_dataset

    records = load_dataset(entry).records
    return [f"{r.source.path}:{r.onset_index}:{r.offset_index + 1}" for r in records], records


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", nargs="*", default=["real", "demo"], choices=["real", "demo"])
    parser.add_argument("--clips", nargs="*", default=list(REAL_CLIPS), help="real clips")
    parser.add_argument("--demo-subjects", type=int, default=DEMO_DEFAULTS["n_subjects"])
    parser.add_argument("--demo-clips-per-emotion", type=int, default=DEMO_DEFAULTS["clips_per_emotion"])
    parser.add_argument("--workers", nargs="*", type=int, default=[1, 2], help="Dask worker processes to try")
    parser.add_argument("--scaling-pairs", type=int, default=3,
                        help="1-worker / 2-worker pairs of first runs per dataset (the first pair is the main runs); "
                        "the speed-up reported is the median over pairs")
    parser.add_argument("--threads", action="store_true", help="also run the default thread runner (no --workers)")
    parser.add_argument("--no-naive", action="store_true", help="skip the naive reference")
    parser.add_argument("--scratch", type=Path, default=None)
    parser.add_argument("--name", default="ingest_runs")
    parser.add_argument("--pairs-per-task", type=int, default=None,
                        help="execution.pairs_per_task (TV-L1 pairs per task of a split clip; 0: never split)")
    parser.add_argument("--split-min-share", type=float, default=None,
                        help="execution.split_min_share (split clips of at least this share of a worker's work)")
    args = parser.parse_args(argv)
    execution = {k: v for k, v in (("pairs_per_task", args.pairs_per_task),
                                   ("split_min_share", args.split_min_share)) if v is not None}

    from schemas.catalog import load_catalog
    from stag_features.ingest.steps import entry_pipeline_config

    scratch = scratch_dir("runs", args.scratch)
    clips = [resolve_clip(c) for c in args.clips] if "real" in args.datasets else None
    demo = ({**DEMO_DEFAULTS, "n_subjects": args.demo_subjects, "clips_per_emotion": args.demo_clips_per_emotion}
            if "demo" in args.datasets else None)
    catalog = write_bench_catalog(scratch, clips=clips, demo=demo)
    entries = load_catalog(catalog).datasets
    naive_jobs = {}
    if "demo" in entries:
        jobs, records = demo_jobs(entries["demo"])  # generates the frames (not timed)
        naive_jobs["demo"] = ("folders", jobs, len(records))
    if "real" in entries:
        naive_jobs["real"] = ("clips", [c.name for c in clips], len(clips))
    runners = [*args.workers, *([None] if args.threads else [])]
    results: dict[str, dict] = {}
    home = scratch / "prefect-home"
    home.mkdir(exist_ok=True)
    with LoadSampler() as load, prefect_server(home) as env:
        server = psutil.Process().children(recursive=True)  # the Prefect server's processes
        # fixed costs of a CLI run: Python with the fast path's imports, and with Prefect and the flow too
        startup = {name: min(run_tree([sys.executable, "-c", f"import {modules}"], env=env).wall_s for _ in range(3))
                   for name, modules in (("python_s", "sys"), ("fast_path_imports_s", FAST_PATH_MODULES),
                                         ("flow_imports_s", f"{FAST_PATH_MODULES}, flows.ingest"))}
        print(f"python start and imports: {startup}", flush=True)
        for dataset in args.datasets:
            entry = entries[dataset]
            pipeline = entry_pipeline_config(entry).model_dump(mode="json", by_alias=True)
            config = execution_config(entry, scratch, execution)
            kind, jobs, n_clips = naive_jobs[dataset]
            res: dict = {"clips": n_clips, "runs": {}}
            if not args.no_naive:
                print(f"[{dataset}] naive reference on {n_clips} clips ...", flush=True)
                res["naive"] = run_naive(jobs, kind, scratch / f"naive_{dataset}", pipeline, env)
                shutil.rmtree(scratch / f"naive_{dataset}", ignore_errors=True)
                print(f"    {res['naive']['wall_s']:.1f} s, {res['naive']['pairs']} TV-L1 pairs", flush=True)
            for workers in runners:
                label = f"workers_{workers}" if workers else "threads"
                shutil.rmtree(entry.store, ignore_errors=True)
                print(f"[{dataset}] stag {label}: first run ...", flush=True)
                first = run_stag(catalog, dataset, workers, env, server, config)
                print(f"    {first['wall_s']:.1f} s (flow {first.get('flow_s', float('nan')):.1f} s, "
                      f"ok {first.get('ok')}, failed {first.get('failed')})", flush=True)
                print(f"[{dataset}] stag {label}: rerun (cached) ...", flush=True)
                rerun = run_stag(catalog, dataset, workers, env, server, config)
                print(f"    {rerun['wall_s']:.1f} s (skipped {rerun.get('skipped')})", flush=True)
                res["runs"][label] = {"first": first, "rerun": rerun,
                                      "rerun_fraction_wall": rerun["wall_s"] / first["wall_s"],
                                      "rerun_fraction_flow": (rerun.get("flow_s", float("nan"))
                                                              / first.get("flow_s", float("nan")))}
            runs = res["runs"]
            if "workers_1" in runs and "workers_2" in runs:
                pairs = [scaling_pair(runs["workers_1"]["first"], runs["workers_2"]["first"])]
                for extra in range(2, args.scaling_pairs + 1):
                    timed = {}
                    for workers in (1, 2):  # in turn, so that a drift of the machine's speed hits both
                        shutil.rmtree(entry.store, ignore_errors=True)
                        print(f"[{dataset}] stag workers_{workers}: first run, scaling pair {extra} ...", flush=True)
                        timed[workers] = run_stag(catalog, dataset, workers, env, server, config)
                    pairs.append(scaling_pair(timed[1], timed[2]))
                    print(f"    {pairs[-1]['speedup_wall']:.2f}x", flush=True)
                res["scaling_pairs"] = pairs
                res["speedup_2_vs_1_wall"] = statistics.median(p["speedup_wall"] for p in pairs)
                res["speedup_2_vs_1_flow"] = statistics.median(p["speedup_flow"] for p in pairs)
                res["speedup_2_vs_1_work_span"] = statistics.median(p["speedup_work_span"] for p in pairs)
            if "naive" in res:
                for label, run in runs.items():
                    run["ratio_to_naive_wall"] = run["first"]["wall_s"] / res["naive"]["wall_s"]
            results[dataset] = res
    rows = []
    for dataset, res in results.items():
        if "naive" in res:
            rows.append({"dataset": dataset, "run": "naive", "wall_s": res["naive"]["wall_s"], "flow_s": "",
                         "ok/skip/fail": f"{res['naive']['clips']}/-/-",
                         "vs_naive": 1.0, "peak_mb": res["naive"]["peak_tree_rss_mb"]})
        for label, run in res["runs"].items():
            for phase in ("first", "rerun"):
                r = run[phase]
                rows.append({"dataset": dataset, "run": f"{label} {phase}", "wall_s": r["wall_s"],
                             "flow_s": r.get("flow_s", ""),
                             "ok/skip/fail": f"{r.get('ok')}/{r.get('skipped')}/{r.get('failed')}",
                             "vs_naive": (r["wall_s"] / res["naive"]["wall_s"]) if "naive" in res else "",
                             "peak_mb": r["peak_tree_rss_mb"]})
    print("\nIngest runs (wall seconds of the whole command)")
    print(table(rows, None, "{:.2f}"))
    for dataset, res in results.items():
        for key in ("speedup_2_vs_1_wall", "speedup_2_vs_1_flow", "speedup_2_vs_1_work_span"):
            if key in res:
                print(f"{dataset}: {key} = {res[key]:.2f}x")
        for label, run in res["runs"].items():
            print(f"{dataset}: {label} rerun = {run['rerun_fraction_wall']:.1%} of the first run (wall), "
                  f"{run['rerun_fraction_flow']:.1%} (flow)")
    write_results(args.name, {"datasets": results, "startup": startup, "scratch": str(scratch),
                              "execution": execution or "PipelineConfig defaults"}, load, notes=[
        "wall_s: whole command in a fresh process; flow_s: the flow's own reported time",
        "naive: benchmarks/naive_reference.py, TV-L1 onset -> every frame, same TV-L1 parameters and crop size",
        "stag: python -m stag_cli.ingest (stag-ingest) with --workers N: a local Dask cluster of N processes, "
        "against a Prefect server started by the benchmark",
        "peak memory: summed RSS of the command's process tree, sampled every 0.2 s",
        "cpu_s: user + system seconds of the command's own process (flow engine, Dask scheduler and nannies), "
        "of its descendants (Dask worker processes), and of the Prefect server during the command",
        "rerun: with every sample settled, stag-ingest takes its fast path (no Prefect import, no flow run)",
        "speedup_2_vs_1_*: median over scaling_pairs, each a 1-worker then a 2-worker first run into a fresh store "
        "(the first pair is the main runs above)",
    ])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
