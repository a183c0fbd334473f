"""Dask task runner and scheduled catalog ingest, against a real Prefect server on 127.0.0.1."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time

import pytest
import yaml
from prefect import flow, task

from flows.cluster import EarlyCluster, started_cluster
from flows.ingest import ingest_dataset, runner_for
from stag_cli.ingest import ingest_main
from stag_features.store.query import open_store
from stag_features.store.validate import validate_store

from .conftest import PROJECT_ROOT, demo_entry, stores_equal, write_catalog  # noqa: TID252

SCHEDULE_INTERVAL_S = 5
SCHEDULE_TIMEOUT_S = 240


def _run_flow_on_two_workers(catalog) -> int:
    runner = runner_for(workers=2)
    assert runner.cluster_kwargs["n_workers"] == 2 and runner.cluster_kwargs["processes"]
    counts = ingest_dataset.with_options(task_runner=runner)(catalog=str(catalog), dataset="demo")
    assert counts["ok"] == 10, counts
    return 0 if counts["failed"] == 0 else 1


def _run_cli_on_two_workers(catalog) -> int:
    """stag-ingest --workers 2: its cluster starts in the background before Prefect is imported."""
    code = ingest_main(["--catalog", str(catalog), "--dataset", "demo", "--workers", "2"])
    with pytest.raises(RuntimeError, match="no EarlyCluster"):
        started_cluster()  # the command's block closed its cluster
    return code


def _worker_origin(dask_worker) -> dict:
    return {"parent": os.getppid(), "image": "flows.worker_image" in sys.modules,
            "profiled": "profile" in dask_worker.periodic_callbacks}  # Dask's statistical profiler


@pytest.mark.slow
def test_early_cluster_forks_its_workers_from_one_preloaded_server():
    """The workers of stag-ingest --workers N are forked from one server that imported the pipeline
    and loaded the landmark model once, not started as fresh interpreters by this process."""
    from distributed import Client

    with EarlyCluster(2) as early, Client(early.cluster()) as client:
        origins = list(client.run(_worker_origin).values())
    assert len(origins) == 2 and all(o["image"] and not o["profiled"] for o in origins), origins
    parents = {o["parent"] for o in origins}
    assert len(parents) == 1 and os.getpid() not in parents, (parents, os.getpid())


# a fresh process: the fork server of this one may be running already
_FORK_SERVER_FIRST = """
import distributed
import multiprocessing.forkserver as fork_server
seen = {"started": False}
start = fork_server.ensure_running
def ensure_running():  # the module function; Dask starts the server through the ForkServer object itself
    seen["started"] = True
    start()
fork_server.ensure_running = ensure_running
class NoCluster:  # stands in for LocalCluster: notes whether the fork server was started when Dask was asked
    def __init__(self, **kwargs):
        seen["up"] = seen["started"]
    def close(self):
        pass
distributed.LocalCluster = NoCluster
from flows.cluster import EarlyCluster
with EarlyCluster(1) as early:
    early.cluster()
print("fork server up before Dask's cluster:", seen["up"])
"""


def test_early_cluster_starts_its_fork_server_before_dask_starts_the_cluster():
    """The fork server's imports (the pipeline, the landmark model) are what the first task waits for:
    they begin first, not when Dask starts its first worker."""
    run = subprocess.run([sys.executable, "-c", _FORK_SERVER_FIRST], cwd=PROJECT_ROOT, capture_output=True, text=True,
                         timeout=120)
    assert run.returncode == 0, run.stderr[-2000:]
    assert "fork server up before Dask's cluster: True" in run.stdout, run.stdout


_PROGRAM = """
import atexit, gc, stag_cli.ingest
atexit.register(lambda: print("frozen at exit:", gc.get_freeze_count() > 0, flush=True))
stag_cli.ingest.ingest_main = lambda: 3
stag_cli.ingest.main()
"""


def test_the_program_exits_with_the_run_code_leaving_its_objects_to_the_os():
    """stag-ingest (``stag_cli.ingest.main``) exits with ingest_main's code, its objects frozen out of the
    interpreter's last garbage collection; atexit handlers still run."""
    run = subprocess.run([sys.executable, "-c", _PROGRAM], cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=60)
    assert run.returncode == 3, run.stderr[-2000:]
    assert "frozen at exit: True" in run.stdout, run.stdout


@pytest.mark.slow
def test_early_cluster_spawns_its_workers_where_there_is_no_fork_server(monkeypatch):
    """Without the forkserver start method (Windows) the workers are fresh interpreters started here."""
    import multiprocessing

    from distributed import Client

    monkeypatch.setattr(multiprocessing, "get_all_start_methods", lambda: ["spawn"])
    with EarlyCluster(1) as early, Client(early.cluster()) as client:
        origins = list(client.run(_worker_origin).values())
    assert origins == [{"parent": os.getpid(), "image": False, "profiled": False}]


@pytest.mark.slow
def test_the_flows_local_cluster_runs_its_workers_without_dask_profiler():
    """runner_for(workers=N) builds its cluster like EarlyCluster does: no statistical profiler in
    the workers (its CPU would be taken from the other workers' tasks), the process's Dask config
    left as it was."""
    import dask
    from distributed import Client

    runner = runner_for(workers=1)
    with runner.cluster_class(**runner.cluster_kwargs) as cluster, Client(cluster) as client:
        origins = list(client.run(_worker_origin).values())
    assert [o["profiled"] for o in origins] == [False]
    assert dask.config.get("distributed.worker.profile.enabled") is True


@task
def _task_run_client() -> dict:
    """Which Prefect client this task run's engine took, seen from inside the run."""
    from prefect.client.orchestration import get_client
    from prefect.context import SyncClientContext

    from flows.worker_preload import worker_prefect_client

    shared = worker_prefect_client()
    return {"pid": os.getpid(), "shared_id": id(shared), "get_client": get_client(sync_client=True) is shared,
            "engine": SyncClientContext.get().client is shared, "open": shared is not None and not shared._closed}


@flow
def _three_task_runs() -> list[dict]:
    return [future.result() for future in [_task_run_client.submit() for _ in range(3)]]


@pytest.mark.slow
@pytest.mark.parametrize("early", [False, True], ids=["runner_for", "early_cluster"])
def test_task_runs_on_a_local_worker_share_one_prefect_client(early, prefect_server):
    """A local Dask worker opens one Prefect client as it starts and every task run it executes takes
    that one (the engine's context and get_client), instead of building two clients per run."""
    if early:
        with EarlyCluster(1):
            runs = _three_task_runs.with_options(task_runner=runner_for(workers=1, early=True))()
    else:
        runs = _three_task_runs.with_options(task_runner=runner_for(workers=1))()
    pids = {run["pid"] for run in runs}
    assert len(pids) == 1 and os.getpid() not in pids, runs  # one worker process, not this one
    assert len({run["shared_id"] for run in runs}) == 1, runs
    assert all(run["get_client"] and run["engine"] and run["open"] for run in runs), runs


def test_the_workers_of_runner_for_take_the_api_address_this_process_has(monkeypatch):
    """runner_for hands the workers the Prefect API this process reports to, also one set in code,
    since their shared client must talk to the server the flow's runs are recorded on."""
    from prefect.settings import PREFECT_API_URL, temporary_settings

    monkeypatch.setenv("PREFECT_API_URL", "http://127.0.0.1:9/api")  # what the workers would inherit
    with temporary_settings({PREFECT_API_URL: "http://127.0.0.1:4242/api"}):
        env = runner_for(workers=2).cluster_kwargs["env"]
    assert env == {"PREFECT_API_URL": "http://127.0.0.1:4242/api"}


def _no_api_client(dask_worker):
    from flows.worker_preload import worker_prefect_client

    return os.environ.get("PREFECT_API_URL"), worker_prefect_client()


@pytest.mark.slow
def test_a_local_worker_without_a_configured_prefect_api_builds_no_client(monkeypatch):
    """Without PREFECT_API_URL (a flow on Prefect's temporary server, whose address comes with each
    task run) a worker opens no client of its own."""
    from distributed import Client

    from flows.cluster import local_cluster, local_cluster_kwargs

    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    with local_cluster(**local_cluster_kwargs(1)) as cluster, Client(cluster) as client:
        assert list(client.run(_no_api_client).values()) == [(None, None)]


@pytest.mark.slow
@pytest.mark.parametrize("run", [_run_flow_on_two_workers, _run_cli_on_two_workers], ids=["flow", "cli"])
def test_local_dask_cluster_of_two_processes_gives_the_threaded_store(
        run, threaded_demo_store, tiny_demo_raw, tmp_path, prefect_server):
    _catalog, reference = threaded_demo_store
    store = tmp_path / "dask.zarr"
    catalog = write_catalog(tmp_path, {"demo": demo_entry(tiny_demo_raw, store)})
    assert run(catalog) == 0
    assert stores_equal(store, reference) == []
    assert validate_store(store).ok


@pytest.mark.slow
def test_served_catalog_flow_ingests_a_dataset_added_to_the_catalog(
        threaded_demo_store, tiny_demo_raw, tmp_path, prefect_server):
    _catalog, reference = threaded_demo_store
    first = tmp_path / "first.zarr"
    shutil.copytree(reference, first)  # already up to date: the schedule leaves it alone
    catalog = write_catalog(tmp_path, {"first": demo_entry(tiny_demo_raw, first)})
    log = (tmp_path / "serve.log").open("w")
    server = subprocess.Popen(
        [sys.executable, "-m", "stag_cli.main", "serve", "--catalog", str(catalog),
         "--interval", str(SCHEDULE_INTERVAL_S), "--name", "stag-test-schedule"],
        cwd=PROJECT_ROOT, stdout=log, stderr=subprocess.STDOUT, env=os.environ,
    )
    try:
        added = tmp_path / "added.zarr"
        body = yaml.safe_load(catalog.read_text())
        body["datasets"]["added"] = demo_entry(tiny_demo_raw, added)
        catalog.write_text(yaml.safe_dump(body, sort_keys=False))
        deadline = time.monotonic() + SCHEDULE_TIMEOUT_S
        while time.monotonic() < deadline and server.poll() is None:
            if (added / "zarr.json").exists() and open_store(added).sizes["sample"] == 10:
                break
            time.sleep(2)
        assert server.poll() is None, (tmp_path / "serve.log").read_text()[-2000:]
        assert (added / "zarr.json").exists(), (tmp_path / "serve.log").read_text()[-2000:]
        assert open_store(added).sizes["sample"] == 10
        # same clips and features; the input hash covers the record, whose dataset name differs
        assert stores_equal(added, reference, ignore=("input_hash",)) == []
        assert validate_store(added).ok
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()
