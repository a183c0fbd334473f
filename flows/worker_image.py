"""Imported once by the fork server that ``flows.cluster.EarlyCluster``'s Dask workers are forked
from (``FORKSERVER_PRELOAD``): every worker starts with the flow's tasks, the feature pipeline and
the default landmark model already in memory, instead of loading them itself. Nothing here may
start a thread: the server forks each worker from this state."""
import flows.worker_preload  # noqa: F401 - Prefect, the ingest tasks, OpenCV, dlib, zarr and every stage
from schemas.pipeline_config import PipelineConfig
from stag_features.ingest.producers import warm_backend

warm_backend(PipelineConfig())  # each worker's first task with the default face config takes this one
