"""Producers of samples: what turns one record into its features, behind one ingest path.

Every ingest runs the same steps whatever made its data (``stag_features.ingest.steps``:
the plan, the input hash, the slots, the slot writer, failures recorded in the store);
a producer supplies only what is particular to its data:

    producer = producer_for(entry, config)
    producer.identity(entry)        # what its store is built from: config, hash, layout, units
    producer.input_files(record)    # the files whose bytes the input hash covers (None: no source)
    producer.features(record)       # the sample's SampleFeatures; SampleError on bad input
    producer.cost(record)           # a scheduling estimate (bigger first)
    producer.splittable             # whether a long clip may be split into TV-L1 pair tasks

``PipelineProducer`` runs frames or videos through ``stag_features.extract.sample_pipeline``;
``FlowImageProducer`` (``stag_features.ingest.composite``) reads precomputed flow images,
``PhaseImageProducer`` (``stag_features.ingest.composite_phases``) the composite's two motion
phases with landmarks from its apex faces. A
producer is a small frozen dataclass (a config and paths, never arrays): it travels with the
tasks to every worker. A new kind of data is one more producer and a case in ``producer_for``.
"""
from __future__ import annotations

import threading
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, Protocol

import numpy as np

from schemas.catalog import DatasetEntry
from schemas.pipeline_config import PipelineConfig
from schemas.sample_features import SampleFeatures
from schemas.sample_record import SampleRecord
from schemas.store_spec import StoreLayout
from stag_features.adapters import dataset_schemes
from stag_features.extract.frame_sources import numbered_images
from stag_features.store.identity import StoreIdentity


class Producer(Protocol):
    """What an ingest needs from the code that makes a dataset's samples (see the module docstring)."""

    kind: ClassVar[str]  # recorded as the store's ``producer`` attribute
    splittable: ClassVar[bool]
    config: PipelineConfig

    def identity(self, entry: DatasetEntry) -> StoreIdentity: ...

    def input_files(self, record: SampleRecord) -> list[Path] | None: ...

    def features(self, record: SampleRecord) -> SampleFeatures: ...

    def cost(self, record: SampleRecord) -> float: ...


# -- the landmark backend of the pipeline, loaded once per thread ----------------------------
_BACKENDS = threading.local()
_SPARES: dict[str, Future | None] = {}  # face config JSON -> a backend warm_backend is building or built
_SPARE_LOCK = threading.Lock()
_TAKEN = None  # a spare some thread took


def warm_backend(config: PipelineConfig) -> None:
    """Build the landmark backend for ``config.face`` now (in the caller's thread), for the first
    ``cached_backend`` call with that face config in any thread of this process: a Dask worker
    loads its model (~0.5 s) while the flow is still planning, not in its first task."""
    from stag_features.extract.face import make_backend

    key = config.face.model_dump_json()
    with _SPARE_LOCK:
        if key in _SPARES:
            return
        spare = _SPARES[key] = Future()
    try:
        spare.set_result(make_backend(config.face))
    except BaseException as exc:  # noqa: BLE001 - the first task then sees it
        spare.set_exception(exc)


def cached_backend(config: PipelineConfig):
    """The landmark backend for ``config.face``, built once per thread (loading a model takes ~0.5 s),
    or the one ``warm_backend`` built for it (handed to one thread only)."""
    from stag_features.extract.face import make_backend

    key = config.face.model_dump_json()
    cache = getattr(_BACKENDS, "by_config", None)
    if cache is None:
        cache = _BACKENDS.by_config = {}
    if key not in cache:
        with _SPARE_LOCK:
            spare = _SPARES.pop(key, None)
            _SPARES[key] = _TAKEN  # later threads build their own
        cache[key] = spare.result() if isinstance(spare, Future) else make_backend(config.face)
    return cache[key]


# -- the video pipeline ----------------------------------------------------------------------
def analysed_frames(record: SampleRecord) -> int:
    """onset..offset positions of the record's source, 0 when unresolved (a cost estimate only)."""
    if record.onset_index is None or record.offset_index is None:
        return 0
    return max(0, record.offset_index - record.onset_index + 1)


def pipeline_layout(config: PipelineConfig, schemes: dict[str, tuple[str, ...]]) -> StoreLayout:
    """Dimension sizes and names of a store written by the per-sample pipeline with ``config``."""
    from stag_features.extract.rois import roi_names, static_edges  # numpy only: reruns plan without OpenCV

    edges = np.asarray(static_edges(config.rois)).reshape(-1, 2)
    return StoreLayout(
        frames=config.selection.k, height=config.align.crop_size, width=config.align.crop_size,
        time=config.store.max_time, patch=config.roi_features.patch_size,
        roi_names=tuple(roi_names(config.rois)), au_names=tuple(config.aus.names()),
        edges=tuple((int(a), int(b)) for a, b in edges), class_schemes=schemes,
        **config.appearance_layout(),  # the appearance images' arrays and sizes, where the config computes them
    )


@dataclass(frozen=True)
class PipelineProducer:
    """Raw clips (frame folders or videos) through the per-sample chain, frames to graph."""

    config: PipelineConfig
    kind: ClassVar[str] = "pipeline"
    splittable: ClassVar[bool] = True
    flow_units: ClassVar[str] = "px at the aligned crop size (align.crop_size)"

    def identity(self, entry: DatasetEntry) -> StoreIdentity:
        return StoreIdentity(
            dataset=entry.name, producer=self.kind, config=self.config.provenance(),
            config_hash=self.config.config_hash(), layout=pipeline_layout(self.config, dataset_schemes(entry)),
            store_config=self.config.store, flow_units=self.flow_units,
        )

    def input_files(self, record: SampleRecord) -> list[Path] | None:
        """The frames the sample uses: the numbered images onset..offset of the clip's folder (all of
        them without an onset or offset), or its video file; None without a source."""
        source = record.source
        if source is None:
            return None
        if source.kind == "video":
            return [Path(source.path)]
        images = [image for _number, image in numbered_images(Path(source.path))]
        first = record.onset_index if record.onset_index is not None else 0
        last = record.offset_index if record.offset_index is not None else len(images) - 1
        return images[first:last + 1]

    def features(self, record: SampleRecord) -> SampleFeatures:
        from stag_features.extract.sample_pipeline import extract_sample

        return extract_sample(record, self.config, backend=cached_backend(self.config))

    def cost(self, record: SampleRecord) -> float:
        """Its analysed frames (+1, so that unknown lengths still count)."""
        return analysed_frames(record) + 1


def uses_flow_images(entry: DatasetEntry) -> bool:
    """True for datasets distributed as precomputed flow images (imported, not extracted)."""
    return entry.adapter == "megc2019" and "flow_dir" in entry.options


def producer_for(entry: DatasetEntry, config: PipelineConfig) -> Producer:
    """The producer of ``entry``'s samples under ``config``."""
    if uses_flow_images(entry) and "phases_dir" in entry.options:
        from stag_features.ingest.composite_phases import PhaseImageProducer

        return PhaseImageProducer.for_entry(entry, config)
    if uses_flow_images(entry):
        from stag_features.ingest.composite import FlowImageProducer

        return FlowImageProducer.for_entry(entry, config)
    return PipelineProducer(config)
