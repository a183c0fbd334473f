"""Imported by every local Dask worker as it starts (``flows.cluster.WORKER_PRELOAD``): the
flow's tasks and the feature pipeline load during the worker's start-up, which overlaps with
the command's own, instead of when the first task arrives. Once the worker has registered,
a background thread loads the default landmark model (``warm_backend``) while the flow plans.

Each worker also opens one Prefect API client for all its task runs (``worker_prefect_client``).
Without it Prefect builds two clients per task run (one as it restores the flow's context, one
for the run itself), each with a TLS context loaded from certifi's CA bundle and its own API
version check: about 40 ms of the ~70 ms of worker CPU a task run costs beyond its own work,
taken from the other workers' tasks when there are as many workers as cores."""
import logging
import threading
import time

from distributed.core import Status

import flows.ingest  # noqa: F401 - Prefect and the ingest tasks
import stag_features.extract.sample_pipeline  # noqa: F401 - OpenCV, dlib, zarr and every stage
from flows.local_server import die_with_parent
from schemas.pipeline_config import PipelineConfig
from stag_features.ingest.producers import warm_backend

REGISTRATION_POLL_S = 0.05  # how often the warming thread looks whether the worker has registered
REGISTRATION_WAIT_S = 60.0  # a worker that has not registered by then is not worth warming

logger = logging.getLogger(__name__)
_client_context = None  # this worker's prefect.context.SyncClientContext, while open


def _warm_once_running(worker) -> None:
    deadline = time.monotonic() + REGISTRATION_WAIT_S
    while worker.status != Status.running:  # loading holds the GIL: not during the registration
        if worker.status in (Status.closing, Status.closed, Status.failed) or time.monotonic() > deadline:
            return
        time.sleep(REGISTRATION_POLL_S)
    warm_backend(PipelineConfig())  # a run with another face config builds its own in its first task


def _open_prefect_client() -> None:
    """Enter a Prefect client context in the worker's start-up, which every task the worker runs
    inherits (Dask copies the context of the coroutine that started the worker into each task's
    thread): Prefect's task engine then takes that client instead of building its own
    (``get_client`` and ``SyncClientContext.get_or_create`` reuse an open context).

    Only with a configured API (``PREFECT_API_URL``, which the flow's process shares: the command's
    environment, or ``flows.ingest.runner_for`` hands it to the workers); a flow on Prefect's
    temporary server sends that server's address with each task run, so the workers keep building
    their clients per run. A server that cannot be reached now leaves them to do so as well."""
    global _client_context
    from prefect.context import SyncClientContext
    from prefect.settings import PREFECT_API_URL

    if not PREFECT_API_URL.value():
        return
    try:
        context = SyncClientContext()
        context.__enter__()  # opens the client and checks the server's API version, once
    except Exception as exc:  # noqa: BLE001 - a slower worker, never a worker that fails to start
        logger.warning("each task run builds its own Prefect client: %s: %s", type(exc).__name__, exc)
        return
    _client_context = context


def worker_prefect_client():
    """The Prefect client this worker's task runs share (None: each builds its own)."""
    return _client_context.client if _client_context is not None else None


def dask_setup(worker) -> None:
    """Called by Dask as the worker starts: the worker dies with the process that forked it (the fork
    server, which ends with stag-ingest), one Prefect client for its task runs, the landmark model
    warmed in the background."""
    die_with_parent()
    _open_prefect_client()
    threading.Thread(target=_warm_once_running, args=(worker,), name="stag-warm-backend", daemon=True).start()


def dask_teardown(worker) -> None:
    """Called by Dask as the worker closes: close the shared Prefect client."""
    global _client_context
    if _client_context is not None:
        _client_context.client.__exit__(None, None, None)  # the context variable dies with the worker
        _client_context = None
