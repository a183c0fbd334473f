"""The local Dask cluster of ``stag-ingest --workers N``, started ahead of the flow.

Python, Prefect and the flow run take a few seconds to start in the command's
process, and every Dask worker then spends about as long importing the
pipeline (OpenCV, dlib, zarr, Prefect) before its first sample. ``EarlyCluster``
starts the cluster in a background thread as soon as the command knows there
is work, and each worker imports the pipeline while it starts
(``WORKER_PRELOAD``), so that both start-ups overlap instead of following each
other; once registered, each worker loads the default landmark model in the
background while the flow still plans (``flows.worker_preload``). The flow then
runs on it through its address. No Prefect import here: the command's fast
path must not pay for one.

The worker processes come from a fork server (``multiprocessing`` method
``forkserver``) that imports the pipeline and loads the landmark model once
(``flows.worker_image``): with N workers the ~2.5 s of CPU each spent on
that is paid once instead of N times, and on a machine with as many cores as
workers that CPU is taken from the work itself. The server is started before
anything else (its ~2 s of imports are what the first task waits for), not
when Dask starts its first worker. A worker that Dask restarts later (after a
crash) starts the usual way.
"""
from __future__ import annotations

import multiprocessing
import os
import threading

# Nanny worker processes with one thread each: TV-L1 and the other stages are CPU-bound,
# parallelism comes from processes (one per core). No dashboard (bokeh is not installed).
WORKER_PRELOAD = "flows.worker_preload"
# imported by the fork server before it forks any worker: Dask's own module, then the pipeline and a warm model
FORKSERVER_PRELOAD = ["distributed", "flows.worker_image"]
MULTIPROCESSING_METHOD_KEY = "distributed.worker.multiprocessing-method"
API_URL_VARIABLE = "PREFECT_API_URL"
# Dask settings of every local cluster of stag-ingest (its Nannies hand them to their workers). Dask's
# statistical profiler samples the running task's stack every 10 ms for the dashboard and
# ``Client.profile``, which nothing here reads; on a 100-clip demo ingest it took about 1.4% of a
# worker's CPU (its event-loop thread, 0.61 -> 0.34 s per 19 s of tasks without it), and with as many
# workers as cores that CPU is taken from the other worker's task.
LOCAL_CLUSTER_CONFIG = {"distributed.worker.profile.enabled": False}


def local_cluster_kwargs(workers: int, api_url: str | None = None) -> dict:
    """LocalCluster arguments of a run on ``workers`` local processes. ``api_url``: the Prefect API
    the flow reports to, set in each worker's environment, since every worker opens one client to
    it for all its task runs (``flows.worker_preload``)."""
    return {"n_workers": workers, "threads_per_worker": 1, "processes": True, "dashboard_address": None,
            "preload": [WORKER_PRELOAD], "env": {API_URL_VARIABLE: api_url} if api_url else {}}


def local_cluster(config: dict | None = None, **kwargs):
    """A LocalCluster (``kwargs``) started under LOCAL_CLUSTER_CONFIG and ``config``: the
    ``cluster_class`` of a flow's DaskTaskRunner on N local processes."""
    import dask
    from distributed import LocalCluster

    with dask.config.set({**LOCAL_CLUSTER_CONFIG, **(config or {})}):
        return LocalCluster(**kwargs)


class EarlyCluster:
    """A LocalCluster starting in a background thread; ``cluster()`` waits for it. As a context
    manager it is this process's started cluster (``started_cluster``) and closes it at the end."""

    def __init__(self, workers: int):
        self._cluster = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._start, args=(workers,), name="stag-early-cluster", daemon=True)
        self._thread.start()

    def _start(self, workers: int) -> None:
        try:
            forking = "forkserver" in multiprocessing.get_all_start_methods()  # not on Windows: fresh interpreters
            if forking:  # first of all: the server's imports (the critical path of the start) overlap Dask's
                from multiprocessing import forkserver

                multiprocessing.get_context("forkserver").set_forkserver_preload(FORKSERVER_PRELOAD)
                forkserver.ensure_running()  # one already running keeps its preload list
            # Dask's own preload list of the fork server would come too late: the server is running
            method = {MULTIPROCESSING_METHOD_KEY: "forkserver"} if forking else {}
            # the command's Prefect API (its environment: Prefect is not imported here); one set only in
            # a Prefect profile reaches the workers through the same profile
            kwargs = local_cluster_kwargs(workers, os.environ.get(API_URL_VARIABLE))
            self._cluster = local_cluster(config=method, **kwargs)
        except BaseException as exc:  # noqa: BLE001 - raised in the caller's thread by cluster()
            self._error = exc

    def cluster(self):
        """The LocalCluster, once it and its workers are up."""
        self._thread.join()
        if self._error is not None:
            raise self._error
        return self._cluster

    def __enter__(self) -> "EarlyCluster":
        global _started
        _started = self
        return self

    def __exit__(self, *exc) -> None:
        global _started
        _started = None
        self._thread.join()
        if self._cluster is not None:
            self._cluster.close()


_started: EarlyCluster | None = None


def started_cluster():
    """The cluster an ``EarlyCluster`` block of this process started, once it is up: the
    ``cluster_class`` of the flow's DaskTaskRunner, called at its first task. A module function,
    not a bound method, because Prefect pickles the flow and its task runner for each task."""
    if _started is None:
        raise RuntimeError("no EarlyCluster is running in this process")
    return _started.cluster()
