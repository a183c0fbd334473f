"""Imported by every local Dask worker as it starts (``flows.cluster.WORKER_PRELOAD``): the
flow's tasks and the feature pipeline load during the worker's start-up, which overlaps with
the command's own, instead of when the first task arrives. Once the worker has registered,
a background thread loads the default landmark model (``warm_backend``) while the flow plans."""
import threading
import time

from distributed.core import Status

import flows.ingest  # noqa: F401 - Prefect and the ingest tasks
import stag_features.sample_pipeline  # noqa: F401 - OpenCV, dlib, zarr and every stage
from schemas.pipeline_config import PipelineConfig
from stag_features.sample_ingest import warm_backend

REGISTRATION_POLL_S = 0.05  # how often the warming thread looks whether the worker has registered
REGISTRATION_WAIT_S = 60.0  # a worker that has not registered by then is not worth warming


def _warm_once_running(worker) -> None:
    deadline = time.monotonic() + REGISTRATION_WAIT_S
    while worker.status != Status.running:  # loading holds the GIL: not during the registration
        if worker.status in (Status.closing, Status.closed, Status.failed) or time.monotonic() > deadline:
            return
        time.sleep(REGISTRATION_POLL_S)
    warm_backend(PipelineConfig())  # a run with another face config builds its own in its first task


def dask_setup(worker) -> None:
    """Called by Dask as the worker starts: warm the landmark model in the background."""
    threading.Thread(target=_warm_once_running, args=(worker,), name="stag-warm-backend", daemon=True).start()
