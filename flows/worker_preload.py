"""Imported by every local Dask worker as it starts (``flows.cluster.WORKER_PRELOAD``): the
flow's tasks and the feature pipeline load during the worker's start-up, which overlaps with
the command's own, instead of when the first task arrives."""
import flows.ingest  # noqa: F401 - Prefect and the ingest tasks
import stag_features.sample_pipeline  # noqa: F401 - OpenCV, dlib, zarr and every stage
