"""What one Prefect task run costs beyond its own work on a local Dask worker of stag-ingest
(issue 8, section 5: why 2 workers fall short of the two cores' ceiling on small clips).

A job is a fresh process that runs a flow on the project's local cluster
(``flows.cluster.local_cluster``, 1 worker, the worker preload of stag-ingest)
whose tasks do nothing: same signature as ``ingest-batch`` (the store, a batch
of six demo-sized WorkItems, the pipeline config as JSON), so Prefect
serialises, hashes and records the same things. After a warm-up task and the
worker's background model load, ``--tasks`` tasks are submitted at once and
awaited; the job reports seconds per task and CPU per task of the flow's
process (Prefect's engine, the Dask scheduler and nanny), of the worker and
of the Prefect server.

Two settings, run in turn:
  shared   the worker opens one Prefect client as it starts and every task run
           takes it (``flows.worker_preload``; the worker is given PREFECT_API_URL)
  per_run  the worker has no PREFECT_API_URL of its own (the flow sets it in code),
           so each task run builds its clients itself, as Prefect does by default

    python benchmarks/task_overhead.py                   # 3 repeats of 60 tasks each way
    python benchmarks/task_overhead.py --repeats 1 --tasks 20 --name smoke_task_overhead
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

BATCH_ITEMS = 6  # WorkItems per task: a mid-run batch of a 100-clip demo ingest on 2 workers
RECORD_CHARS = 600  # characters of a demo record's JSON
WARM_WAIT_S = 3.0  # the worker's background landmark-model load (flows.worker_preload) ends within this
SETTINGS = ("shared", "per_run")
JOB_TIMEOUT_S = 600


def no_op_batch(store: str, batch: list, config: str) -> list[str]:
    """An ingest-batch task without the work."""
    return [item.sample_id for item in batch]


def cpu_s(server_pids: list[int]) -> dict[str, float]:
    """CPU seconds so far of this process, of its descendants (the Dask worker) and of the server."""
    import psutil

    def total(processes) -> float:
        return sum(sum(p.cpu_times()[:2]) for p in processes)

    me = psutil.Process()
    return {"flow_process": total([me]), "worker": total(me.children(recursive=True)),
            "server": total(psutil.Process(pid) for pid in server_pids)}


def many_no_ops(tasks: int, server_pids: list[int]) -> dict:
    """The flow: a warm-up task, then ``tasks`` no-op tasks at once, timed."""
    import json

    from prefect import task

    from schemas.pipeline_config import PipelineConfig
    from stag_features.ingest.steps import WorkItem

    no_op_task = task(name="no-op-batch")(no_op_batch)
    config_json = PipelineConfig().model_dump_json(by_alias=True)
    items = [WorkItem(sample_id=f"s{i:02d}_happiness_1", slot=i, record_json=json.dumps({"record": "x" * RECORD_CHARS}),
                      input_hash="0" * 64, frames=13) for i in range(BATCH_ITEMS)]
    no_op_task.submit("store", items, config_json).result()  # imports, first client, first connection
    time.sleep(WARM_WAIT_S)
    before, started = cpu_s(server_pids), time.perf_counter()
    futures = [no_op_task.submit("store", items, config_json) for _ in range(tasks)]
    for future in futures:
        future.result()
    wall, after = time.perf_counter() - started, cpu_s(server_pids)
    return {"tasks": tasks, "wall_ms_per_task": 1000 * wall / tasks,
            **{f"{k}_cpu_ms_per_task": 1000 * (after[k] - before[k]) / tasks for k in after}}


def run_job(tasks: int, api_url: str, shared: bool, server_pids: list[int]) -> dict:
    """Time ``tasks`` no-op task runs on a 1-worker local cluster (this process runs the flow)."""
    from prefect import flow
    from prefect.settings import PREFECT_API_URL, temporary_settings
    from prefect_dask import DaskTaskRunner

    from flows.cluster import local_cluster, local_cluster_kwargs

    runner = DaskTaskRunner(cluster_class=local_cluster,
                            cluster_kwargs=local_cluster_kwargs(1, api_url if shared else None))
    with temporary_settings({PREFECT_API_URL: api_url}):
        return flow(name="task-overhead", task_runner=runner)(many_no_ops)(tasks, server_pids)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", type=int, default=60)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--name", default="task_overhead")
    parser.add_argument("--job", choices=SETTINGS, help=argparse.SUPPRESS)
    parser.add_argument("--api-url", help=argparse.SUPPRESS)
    parser.add_argument("--server-pids", default="", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.job:
        pids = [int(p) for p in args.server_pids.split(",") if p]
        print(json.dumps(run_job(args.tasks, args.api_url, args.job == "shared", pids)))
        return 0

    import psutil

    from benchmarks._common import LoadSampler, prefect_server, scratch_dir, table, write_results

    home = scratch_dir("task-overhead") / "prefect-home"
    home.mkdir(exist_ok=True)
    runs: dict[str, list[dict]] = {setting: [] for setting in SETTINGS}
    with LoadSampler() as load, prefect_server(home) as env:
        pids = ",".join(str(p.pid) for p in psutil.Process().children(recursive=True))
        job_env = {k: v for k, v in {**os.environ, **env}.items() if k != "PREFECT_API_URL"}  # the flow sets it in code
        for repeat in range(args.repeats):
            for setting in SETTINGS:  # in turn, so that a drift of the machine's speed hits both
                command = [sys.executable, __file__, "--job", setting, "--tasks", str(args.tasks),
                           "--api-url", env["PREFECT_API_URL"], "--server-pids", pids]
                job = subprocess.run(command, env=job_env, capture_output=True, text=True, timeout=JOB_TIMEOUT_S)
                lines = [line for line in job.stdout.splitlines() if line.startswith("{")]
                if job.returncode != 0 or not lines:
                    print(job.stdout[-2000:], job.stderr[-3000:], sep="\n")
                    raise RuntimeError(f"the {setting} job failed")
                runs[setting].append(json.loads(lines[-1]))
                print(f"repeat {repeat + 1} {setting}: {runs[setting][-1]}", flush=True)
    keys = [k for k in runs[SETTINGS[0]][0] if k != "tasks"]
    rows = [{"setting": setting, **{k: statistics.median(r[k] for r in runs[setting]) for k in keys}}
            for setting in SETTINGS]
    print(table(rows, floatfmt="{:.1f}"))
    write_results(args.name, {"tasks": args.tasks, "repeats": args.repeats, "runs": runs, "median": rows}, load, notes=[
        "milliseconds per no-op ingest-batch-like task run on a 1-worker local cluster; median over repeats",
        "shared: the worker's one Prefect client (flows.worker_preload); per_run: Prefect's default, clients per task run"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
