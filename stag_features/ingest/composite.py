"""Precomputed flow images as samples: the MEGC 2019 composite's producer (``FlowImageProducer``).

The composite is distributed (HTNet, ``STSNet_whole_norm_u_v_os``) as one
28 x 28 image per sample: onset -> apex flow u, v and optical strain, each
min-max normalised to 0..255 by its producer, stored as the R, G, B channels.
OpenCV decodes B, G, R, so the channel order is reversed on reading. Each
image becomes one store sample with K = 1:

    flow[0, 0] = u / 255 - uv_centre      flow[0, 1] = v / 255 - uv_centre
    strain[0]  = strain / 255

in normalised units, not pixels (the producer's per-image normalisation is
not invertible); the store's ``flow_units`` attribute says so. There is no
face step: the 68 landmarks are a schematic frontal face (``SCHEMATIC_FACE``)
scaled to the image, and ROI boxes, ROI features, AU cues and edge
weights are computed from it exactly as the pipeline does for real faces.
The time axis holds two entries, onset (position 0, motion 0) and apex
(position 1, the mean flow magnitude); frame numbers are unknown (-1).

A catalog entry of adapter ``megc2019`` with ``options.flow_dir`` is ingested with
this producer by the same steps as any dataset (``stag-ingest --dataset megc2019``).
"""
from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

import numpy as np

from schemas.catalog import DatasetEntry
from schemas.pipeline_config import PipelineConfig, without_execution
from schemas.sample_features import SampleFeatures
from schemas.sample_record import SampleRecord
from schemas.store_config import CompositeImportConfig
from schemas.store_spec import StoreLayout
from stag_features.adapters.base import entry_schemes
from stag_features.adapters.megc2019 import flow_image
from stag_features.errors import SampleError
from stag_features.store.identity import StoreIdentity

# the PipelineConfig sections an import uses; the store records and hashes only these
USED_SECTIONS = ("selection", "rois", "roi_features", "aus", "graph", "store")
FLOW_UNITS = "normalised: u, v = channel/255 - uv_centre, strain = channel/255 (per-image min-max by the producer)"


def composite_pipeline_config(base: PipelineConfig | None = None) -> PipelineConfig:
    """The pipeline config recorded for a composite store: K = 1 (one onset -> apex flow)."""
    return (base or PipelineConfig()).with_overrides(selection={"k": 1})


def composite_identity(entry: DatasetEntry, config: PipelineConfig, imp: CompositeImportConfig) -> StoreIdentity:
    """Store identity of a composite import: the import config and the pipeline sections it uses,
    hashed together (face, alignment, motion and TV-L1 parameters play no part)."""
    from stag_features.extract.rois import roi_names, static_edges

    used = without_execution(config.model_dump(mode="json", by_alias=True))
    combined = {"composite_import": imp.model_dump(mode="json"), **{k: used[k] for k in USED_SECTIONS}}
    digest = hashlib.sha256(json.dumps(combined, sort_keys=True, separators=(",", ":")).encode()).hexdigest()
    layout = StoreLayout(
        frames=1, height=imp.image_size, width=imp.image_size, time=2, patch=config.roi_features.patch_size,
        roi_names=tuple(roi_names(config.rois)), au_names=tuple(config.aus.names()),
        edges=tuple(tuple(int(v) for v in e) for e in np.asarray(static_edges(config.rois)).reshape(-1, 2)),
        class_schemes={s.name: tuple(s.classes) for s in entry_schemes(entry)},
    )
    return StoreIdentity(
        dataset=entry.name, producer=FlowImageProducer.kind, config=combined, config_hash=digest, layout=layout,
        store_config=config.store, flow_units=FLOW_UNITS,
    )


def read_flow_image(path: Path, imp: CompositeImportConfig, sample: str) -> tuple[np.ndarray, np.ndarray]:
    """(flow (1, 2, S, S), strain (1, S, S)) float32 in normalised units from one flow image."""
    import cv2

    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise SampleError(sample, "decode", f"flow image {path} could not be read as an image")
    if image.shape[:2] != (imp.image_size, imp.image_size):
        raise SampleError(sample, "decode", f"flow image {path} is {image.shape[1]}x{image.shape[0]}, "
                          f"expected {imp.image_size}x{imp.image_size} (composite_import.image_size)")
    channels = image[..., ::-1] if imp.channel_order_bgr else image  # -> (u, v, strain)
    values = channels.astype(np.float32) / 255.0
    flow = np.stack([values[..., 0] - imp.uv_centre, values[..., 1] - imp.uv_centre])[None]
    return flow.astype(np.float32), values[..., 2][None].astype(np.float32)


def region_features(flow: np.ndarray, landmarks: np.ndarray, boxes: np.ndarray, config: PipelineConfig,
                    timings: dict[str, float]) -> dict[str, np.ndarray]:
    """ROI patches and statistics, AU cues and AU-guided edge weights of ``flow`` (K, 2, S, S) with the
    ROI ``boxes`` (R, 4) of ``landmarks`` (68, 2), by the pipeline's own extract code, as SampleFeatures
    fields; the time each step took is added to ``timings``."""
    from stag_features.extract.aus import flow_au_cue
    from stag_features.extract.graph import au_roi_sets, dynamic_edge_weights
    from stag_features.extract.roi_features import roi_features
    from stag_features.extract.rois import au_roi_indices, inter_ocular_distance, roi_names, static_edges

    start = time.perf_counter()
    names = list(roi_names(config.rois))
    patches, stats = roi_features(flow, boxes, config.roi_features)
    timings["rois"] = timings.get("rois", 0.0) + time.perf_counter() - start
    start = time.perf_counter()
    activations, _ = flow_au_cue(flow, boxes, names, landmarks, float(inter_ocular_distance(landmarks)), config.aus)
    acts = au_roi_sets(names, config.aus, au_roi_indices(config.rois))
    weights = dynamic_edge_weights(activations, config.aus.aus, static_edges(config.rois), acts, config.graph)
    timings["aus"] = time.perf_counter() - start
    return {"landmarks_onset": landmarks, "landmarks_apex": landmarks, "roi_boxes": boxes,
            "roi_patches": patches.astype(np.float32), "roi_stats": stats.astype(np.float32),
            "au_activations": activations.astype(np.float32), "edge_weights": weights.astype(np.float32)}


def composite_au_truth(record: SampleRecord, config: PipelineConfig) -> np.ndarray:
    """(A,) int8: the record's coded AUs (1 coded, 0 not), which a composite record has only from the
    megc2019 adapter's ``au_sheets``; every AU unknown (-1) without codes."""
    from stag_features.extract.aus import au_truth_vector

    if not record.aus.terms:
        return np.full(len(config.aus.aus), -1, dtype=np.int8)
    return au_truth_vector(record, config.aus)


def composite_features(record: SampleRecord, image: Path, config: PipelineConfig,
                       imp: CompositeImportConfig) -> SampleFeatures:
    """Every store array of one composite sample, from its flow image and the landmark template."""
    from stag_features.extract.rois import roi_boxes

    timings: dict[str, float] = {}
    start = time.perf_counter()
    flow, strain = read_flow_image(image, imp, record.sample_id)
    timings["decode"] = time.perf_counter() - start
    start = time.perf_counter()
    landmarks = template_landmarks(imp.image_size)
    boxes = np.asarray(roi_boxes(landmarks, config.rois), dtype=np.float32)
    timings["rois"] = time.perf_counter() - start
    magnitude = float(np.hypot(flow[0, 0], flow[0, 1]).mean())
    return SampleFeatures(
        record=record,
        frame_numbers=np.array([-1, -1], dtype=np.int32),
        motion_curve=np.array([0.0, magnitude], dtype=np.float32),
        ranked_frames=np.array([1, 0], dtype=np.int32),
        head_motion=np.zeros(2, dtype=np.float32),
        apex_estimated=1,
        apex_annotated=1,
        selected_frames=np.array([1], dtype=np.int32),
        flow=flow,
        strain=strain,
        onset_face=np.zeros((imp.image_size, imp.image_size), dtype=np.uint8),
        **region_features(flow, landmarks, boxes, config, timings),
        au_truth=composite_au_truth(record, config),
        timings=timings,
    )


# A schematic frontal face: the 68 iBUG points as fractions of a square image,
# built from the alignment template's anchors (eye centres (0.35, 0.36) and
# (0.65, 0.36), nose tip (0.50, 0.54); schemas.face_config.AlignConfig) and
# standard facial proportions (brows ~0.1 above the eyes, mouth at 0.72, chin
# at 0.89, jaw as a half ellipse). Tested against hand-placed landmarks
# (tests/store/test_composite_import.py): after a similarity fit its mean error
# is a small fraction of the inter-ocular distance, enough to place ROI boxes.
_JAW = [(0.5 - 0.38 * np.cos(np.pi * i / 16), 0.36 + 0.53 * np.sin(np.pi * i / 16)) for i in range(17)]
_BROWS = [(0.21, 0.285), (0.26, 0.26), (0.32, 0.25), (0.38, 0.255), (0.44, 0.27),
          (0.56, 0.27), (0.62, 0.255), (0.68, 0.25), (0.74, 0.26), (0.79, 0.285)]
_NOSE = [(0.5, 0.38), (0.5, 0.43), (0.5, 0.485), (0.5, 0.54),
         (0.44, 0.58), (0.47, 0.59), (0.5, 0.595), (0.53, 0.59), (0.56, 0.58)]
_EYES = [(0.29, 0.36), (0.33, 0.345), (0.37, 0.345), (0.41, 0.36), (0.37, 0.375), (0.33, 0.375),
         (0.59, 0.36), (0.63, 0.345), (0.67, 0.345), (0.71, 0.36), (0.67, 0.375), (0.63, 0.375)]
_MOUTH = [(0.39, 0.72), (0.42, 0.70), (0.46, 0.685), (0.5, 0.69), (0.54, 0.685), (0.58, 0.70), (0.61, 0.72),
          (0.58, 0.75), (0.54, 0.765), (0.5, 0.77), (0.46, 0.765), (0.42, 0.75),
          (0.41, 0.72), (0.46, 0.71), (0.5, 0.71), (0.54, 0.71), (0.59, 0.72), (0.54, 0.73), (0.5, 0.73), (0.46, 0.73)]
SCHEMATIC_FACE = np.array(_JAW + _BROWS + _NOSE + _EYES + _MOUTH, dtype=np.float32)  # (68, 2) x, y in [0, 1]


def template_landmarks(size: int) -> np.ndarray:
    """The schematic frontal face scaled to a size x size image, (68, 2) float32 (x, y) in px."""
    return (SCHEMATIC_FACE * np.float32(size)).astype(np.float32)


@dataclass(frozen=True)
class FlowImageProducer:
    """Samples read from precomputed onset -> apex flow images in ``flow_dir`` (one per record)."""

    config: PipelineConfig  # K = 1 (``composite_pipeline_config``); ROIs, AUs, graph and store sections used
    flow_dir: Path
    imp: CompositeImportConfig = field(default_factory=CompositeImportConfig)
    kind: ClassVar[str] = "composite_import"
    splittable: ClassVar[bool] = False

    @classmethod
    def for_entry(cls, entry: DatasetEntry, config: PipelineConfig) -> "FlowImageProducer":
        return cls(composite_pipeline_config(config), Path(str(entry.options["flow_dir"])))

    def identity(self, entry: DatasetEntry) -> StoreIdentity:
        return composite_identity(entry, self.config, self.imp)

    def input_files(self, record: SampleRecord) -> list[Path] | None:
        image = flow_image(self.flow_dir, record)
        return None if image is None else [image]

    def features(self, record: SampleRecord) -> SampleFeatures:
        image = flow_image(self.flow_dir, record)
        if image is None:
            raise SampleError(record.sample_id, "decode", f"no flow image for {record.subject}_{record.clip} "
                              f"in {self.flow_dir}")
        return composite_features(record, image, self.config, self.imp)

    def cost(self, record: SampleRecord) -> float:
        return 1.0
