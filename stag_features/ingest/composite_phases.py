"""The MEGC 2019 composite as STAG means it: two motion phases and real faces (``PhaseImageProducer``).

Per sample (one row of ``combined_3class_gt.csv``) three sources are read:

- ``phases_dir``: a second group's TV-L1 run, 28 x 28 images ``<name> .png`` (onset -> apex,
  the contraction) and ``<name>_1 .png`` (apex -> offset, the relaxation); ``<name>`` is the
  sample's ``flow_dir`` image name without `` .png``. Their channels are those of the flow
  images (OpenCV B = strain, G = v, R = u; established from the data, docs/datasets.md), read
  by the same ``read_flow_image``: u, v = channel/255 - uv_centre, strain = channel/255. These
  images are not min-max normalised per image, so one scale holds across samples.
- ``flow_dir`` (optional frame ``megc_onset_apex``): the flow images of the composite, warped
  into the phase images' frame (``phase_frame``).
- ``apex_face_dir``: the 224 x 224 apex face (tight crop); stag's own face step finds the
  subject's 68 landmarks on it (with a black border where the crop is too tight).

Landmarks are mapped into the flow frame: scaled by ``S / 224`` (the flow images and faces
share one crop, docs/datasets.md), then by the phase images' own crop
(``phase_frame``: scale about the centre, then shift). ROIs, ROI features, AU cues and
AU-guided edge weights are then computed by the pipeline's ``extract`` code, per frame.
The store holds K = len(frames) frames, a time axis (onset, apex, offset), the
``source_dataset`` of each sample (casme2, samm, smic) and its ``apex_face`` (grey,
``face_size`` square, the given crop resized).
"""
from __future__ import annotations

import hashlib
import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

import numpy as np

from schemas.catalog import DatasetEntry
from schemas.pipeline_config import PipelineConfig, without_execution
from schemas.sample_features import SampleFeatures
from schemas.sample_record import SampleRecord
from schemas.store_config import CompositePhasesConfig
from schemas.store_spec import APEX_FACE, SOURCE_DATASET, StoreLayout
from stag_features.adapters.base import entry_schemes
from stag_features.adapters.megc2019 import flow_image
from stag_features.errors import SampleError
from stag_features.ingest.composite import (
    composite_au_truth,
    read_flow_image,
    region_features,
    template_landmarks,
)
from stag_features.store.identity import StoreIdentity

LOG = logging.getLogger(__name__)
USED_SECTIONS = ("face", "rois", "roi_features", "aus", "graph", "store")
PHASE_SUFFIX = {"onset_apex": "", "apex_offset": "_1"}  # phase image name = <name><suffix> .png
FACE_SOURCE_SIZE = 224  # side of the composite's apex faces, the crop the flow images share
# time positions of the store's time axis: onset, apex, offset
ONSET_T, APEX_T, OFFSET_T = 0, 1, 2
FRAME_END = {"onset_apex": APEX_T, "apex_offset": OFFSET_T, "megc_onset_apex": APEX_T}
FLOW_UNITS = ("normalised: u, v = channel/255 - uv_centre, strain = channel/255; frames in order of "
              "composite_phases.frames (onset_apex, apex_offset: phase images, one scale across samples; "
              "megc_onset_apex: per-image min-max)")


def phases_identity(entry: DatasetEntry, config: PipelineConfig, phases: CompositePhasesConfig) -> StoreIdentity:
    """Store identity: the phases config and the pipeline sections it uses, hashed together."""
    from stag_features.extract.rois import roi_names, static_edges

    used = without_execution(config.model_dump(mode="json", by_alias=True))
    combined = {"composite_phases": phases.model_dump(mode="json"), **{k: used[k] for k in USED_SECTIONS}}
    digest = hashlib.sha256(json.dumps(combined, sort_keys=True, separators=(",", ":")).encode()).hexdigest()
    size = phases.image.image_size
    layout = StoreLayout(
        frames=len(phases.frames), height=size, width=size, time=OFFSET_T + 1, patch=config.roi_features.patch_size,
        roi_names=tuple(roi_names(config.rois)), au_names=tuple(config.aus.names()),
        edges=tuple(tuple(int(v) for v in e) for e in np.asarray(static_edges(config.rois)).reshape(-1, 2)),
        class_schemes={s.name: tuple(s.classes) for s in entry_schemes(entry)},
        extra_arrays=(SOURCE_DATASET, APEX_FACE), face_size=phases.face_size,
    )
    return StoreIdentity(dataset=entry.name, producer=PhaseImageProducer.kind, config=combined, config_hash=digest,
                         layout=layout, store_config=config.store, flow_units=FLOW_UNITS)


def phase_matrix(phases: CompositePhasesConfig) -> np.ndarray:
    """(2, 3) affine map of the flow images' frame onto the phase images' (scale about the centre, shift)."""
    scale, (dx, dy) = phases.phase_landmark_scale, phases.phase_landmark_shift_px
    centre = (phases.image.image_size - 1) / 2
    return np.array([[scale, 0, (1 - scale) * centre + dx], [0, scale, (1 - scale) * centre + dy]])


def phase_frame(points: np.ndarray, phases: CompositePhasesConfig, inverse: bool = False) -> np.ndarray:
    """Points (N, 2) in the flow images' frame -> the phase images' frame (``inverse``: the other way)."""
    import cv2

    matrix = cv2.invertAffineTransform(phase_matrix(phases)) if inverse else phase_matrix(phases)
    return (np.asarray(points, np.float64) @ matrix[:, :2].T + matrix[:, 2]).astype(np.float32)


def warp_to_phase_frame(image: np.ndarray, phases: CompositePhasesConfig, inverse: bool = False) -> np.ndarray:
    """A (..., S, S) array in the flow images' frame resampled into the phase images' frame
    (``inverse``: from the phase images' frame into the flow images')."""
    import cv2

    size = phases.image.image_size
    matrix = cv2.invertAffineTransform(phase_matrix(phases)) if inverse else phase_matrix(phases)
    flat = image.reshape(-1, size, size)
    warped = [cv2.warpAffine(f, matrix, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
              for f in flat.astype(np.float32)]
    return np.stack(warped).reshape(image.shape).astype(np.float32)


def per_image_minmax(flow: np.ndarray, strain: np.ndarray, uv_centre: float) -> tuple[np.ndarray, np.ndarray]:
    """(1, 2, S, S) flow and (1, S, S) strain with each channel min-max normalised over the image, as the
    flow images' producer did: u, v -> [0, 1] - uv_centre, strain -> [0, 1] (a flat channel -> its centre)."""
    def scaled(channel: np.ndarray) -> np.ndarray:
        low, span = channel.min(), channel.max() - channel.min()
        return (channel - low) / span if span > 0 else np.full_like(channel, 0.5)

    u, v = (scaled(flow[0, c] + uv_centre) - uv_centre for c in range(2))
    return np.stack([u, v])[None].astype(np.float32), scaled(strain[0])[None].astype(np.float32)


def apex_face_file(face_dir: Path, base: str) -> Path | None:
    """The apex face of the sample whose flow image is ``<base> .png``: ``<base>.jpg``, or for SMIC
    the name with the unpadded subject (flow ``s01_s01_ne_01``, face ``s01_s1_ne_01``)."""
    smic = base[:4] + base[4:].replace("s0", "s", 1)
    for name in (base, smic):
        path = face_dir / f"{name}.jpg"
        if path.is_file():
            return path
    return None


def face_landmarks(image_bgr: np.ndarray, config: PipelineConfig, phases: CompositePhasesConfig,
                   sample: str, path: Path) -> tuple[np.ndarray, float]:
    """(68, 2) landmarks of the subject on the apex face, and the border fraction it took (0: none)."""
    import cv2

    from stag_features.extract.face import detect_subject
    from stag_features.ingest.producers import cached_backend

    backend = cached_backend(config)
    for fraction in (0.0, *phases.face_border_fractions):
        border = int(round(fraction * image_bgr.shape[0]))
        padded = cv2.copyMakeBorder(image_bgr, border, border, border, border, cv2.BORDER_CONSTANT, value=0)
        found = detect_subject(padded, backend, config.face)
        if found is not None:
            return (np.asarray(found.landmarks, dtype=np.float32) - border).astype(np.float32), fraction
    raise SampleError(sample, "face", f"no face found on apex face {path}, as it is or with borders "
                      f"{list(phases.face_border_fractions)} (composite_phases.face_border_fractions)")


def flow_frames(base: str, record: SampleRecord, paths: "PhaseImageProducer") -> tuple[np.ndarray, np.ndarray]:
    """(flow (K, 2, S, S), strain (K, S, S)) in the phase images' frame, frames in config order."""
    phases = paths.phases
    flows, strains = [], []
    for frame in phases.frames:
        if frame == "megc_onset_apex":
            flow, strain = read_flow_image(flow_image(paths.flow_dir, record), phases.image, record.sample_id)
            if phases.reference_frame == "phases":
                flow, strain = warp_to_phase_frame(flow, phases), warp_to_phase_frame(strain, phases)
        else:
            path = paths.phases_dir / f"{base}{PHASE_SUFFIX[frame]} .png"
            if not path.is_file():
                raise SampleError(record.sample_id, "decode", f"phase image {path} ({frame}) does not exist")
            flow, strain = read_flow_image(path, phases.image, record.sample_id)
            if phases.phase_minmax:
                flow, strain = per_image_minmax(flow, strain, phases.image.uv_centre)
            if phases.reference_frame == "flow":
                flow, strain = (warp_to_phase_frame(flow, phases, inverse=True),
                                warp_to_phase_frame(strain, phases, inverse=True))
        flows.append(flow[0])
        strains.append(strain[0])
    return np.stack(flows), np.stack(strains)


def motion_curve(flow: np.ndarray, phases: CompositePhasesConfig) -> np.ndarray:
    """(3,) motion at onset, apex, offset relative to the onset: 0, the mean flow magnitude of the
    frames ending at the apex, and 0 at the offset (the relaxation returns to neutral)."""
    magnitude = np.hypot(flow[:, 0], flow[:, 1]).mean(axis=(1, 2))
    at_apex = [m for m, frame in zip(magnitude, phases.frames) if FRAME_END[frame] == APEX_T]
    curve = np.zeros(OFFSET_T + 1, dtype=np.float32)
    curve[APEX_T] = float(np.mean(at_apex)) if at_apex else 0.0
    return curve


def phase_features(record: SampleRecord, producer: "PhaseImageProducer") -> SampleFeatures:
    """Every store array of one composite sample from its phase images and apex face."""
    import cv2

    from stag_features.extract.rois import grown_boxes, roi_boxes

    config, phases, sid = producer.config, producer.phases, record.sample_id
    size, timings = phases.image.image_size, {}
    start = time.perf_counter()
    base = producer.base_name(record)
    flow, strain = flow_frames(base, record, producer)
    face_path = apex_face_file(producer.apex_face_dir, base)
    if face_path is None:
        raise SampleError(sid, "decode", f"no apex face {producer.apex_face_dir / (base + '.jpg')} for {sid}")
    face = cv2.imread(str(face_path), cv2.IMREAD_COLOR)
    if face is None:
        raise SampleError(sid, "decode", f"apex face {face_path} could not be read as an image")
    timings["decode"] = time.perf_counter() - start
    start = time.perf_counter()
    if phases.landmarks == "real":
        on_face, border = face_landmarks(face, config, phases, sid, face_path)
        if border:
            LOG.info("%s: face found on %s with a %.0f%% border", sid, face_path.name, 100 * border)
        on_flow = (on_face + 0.5) * (size / face.shape[1]) - 0.5  # pixel centres
    else:
        on_flow = template_landmarks(size)
    landmarks = phase_frame(on_flow, phases) if phases.reference_frame == "phases" else on_flow
    timings["face"] = time.perf_counter() - start
    boxes = grown_boxes(roi_boxes(landmarks, config.rois, image_size=size), phases.roi_min_side_px, size)
    curve = motion_curve(flow, phases)
    grey = cv2.cvtColor(face, cv2.COLOR_BGR2GRAY)
    apex_face = cv2.resize(grey, (phases.face_size, phases.face_size), interpolation=cv2.INTER_AREA)
    return SampleFeatures(
        record=record,
        frame_numbers=np.full(OFFSET_T + 1, -1, dtype=np.int32),  # the composite gives no frame numbers
        motion_curve=curve,
        ranked_frames=np.argsort(-curve, kind="stable").astype(np.int32),
        head_motion=np.zeros(OFFSET_T + 1, dtype=np.float32),
        apex_estimated=APEX_T,
        apex_annotated=APEX_T,
        selected_frames=np.array([FRAME_END[f] for f in phases.frames], dtype=np.int32),
        flow=flow,
        strain=strain,
        onset_face=np.zeros((size, size), dtype=np.uint8),  # no onset frame in the composite
        **region_features(flow, landmarks, boxes, config, timings),
        au_truth=composite_au_truth(record, config),
        extras={SOURCE_DATASET: np.array(record.dataset, dtype=str), APEX_FACE: apex_face},
        timings=timings,
    )


@dataclass(frozen=True)
class PhaseImageProducer:
    """Composite samples from phase images, optional flow images and apex faces (module docstring)."""

    config: PipelineConfig  # face, ROI, ROI feature, AU, graph and store sections used
    flow_dir: Path
    phases_dir: Path
    apex_face_dir: Path
    phases: CompositePhasesConfig = field(default_factory=CompositePhasesConfig)
    kind: ClassVar[str] = "composite_phases"
    splittable: ClassVar[bool] = False

    @classmethod
    def for_entry(cls, entry: DatasetEntry, config: PipelineConfig) -> "PhaseImageProducer":
        options = entry.options
        phases = CompositePhasesConfig.model_validate(options.get("composite_phases", {}))
        return cls(config, Path(str(options["flow_dir"])), Path(str(options["phases_dir"])),
                   Path(str(options["apex_face_dir"])), phases)

    def identity(self, entry: DatasetEntry) -> StoreIdentity:
        return phases_identity(entry, self.config, self.phases)

    def base_name(self, record: SampleRecord) -> str:
        """``<name>`` of the sample's images: its flow image's name without `` .png``."""
        image = flow_image(self.flow_dir, record)
        if image is None:
            raise SampleError(record.sample_id, "decode", f"no flow image for {record.subject}_{record.clip} in "
                              f"{self.flow_dir} (it names the sample's phase images and apex face)")
        return image.name.removesuffix(".png").rstrip()

    def input_files(self, record: SampleRecord) -> list[Path] | None:
        """The sample's phase (and flow) images and its apex face; None when its flow image is missing."""
        image = flow_image(self.flow_dir, record)
        if image is None:
            return None
        base = image.name.removesuffix(".png").rstrip()
        files = [image if f == "megc_onset_apex" else self.phases_dir / f"{base}{PHASE_SUFFIX[f]} .png"
                 for f in self.phases.frames]
        face = apex_face_file(self.apex_face_dir, base)
        return [p for p in [*files, face] if p is not None and p.is_file()]

    def features(self, record: SampleRecord) -> SampleFeatures:
        return phase_features(record, self)

    def cost(self, record: SampleRecord) -> float:
        return 1.0
