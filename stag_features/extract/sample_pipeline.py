"""The whole per-sample chain, frames to graph: ``extract_sample``.

Steps (each timed under its stage name in ``SampleFeatures.timings``):

  decode  frames onset..offset of the record's source (or of ``frames`` given
          in memory); the whole clip when the sheet has no onset / offset
  face    landmark backend set-up and landmarks on the aligned apex crop
  align   one similarity transform from the onset for every frame
          (``align_clip``: detection + landmarks on the onset, crops, head motion)
  motion  cheap-flow motion curve, ranking, apex estimate, K selected frames
  tvl1    Dual TV-L1 flow onset -> each selected frame
  strain  optical strain of each flow
  rois    ROI boxes on the aligned onset landmarks, ROI patches and statistics
  aus     flow-derived AU cue (not a trained detector) and the sheet's AU vector
  graph   AU-guided dynamic weights of the static ROI edges
  appearance  (only with ``appearance.enabled``) the onset and apex faces, their
          difference, the dynamic image and the MESTI image of the aligned crops
          (stag_features.extract.appearance), stored as ``SampleFeatures.extras``

Positions along the analysed frames run 0..T-1 with the onset at 0. The
annotated apex (when the sheet has one) drives frame selection; the estimated
apex is stored beside it for comparison. Bad input raises ``SampleError``
naming the sample, the stage and what is wrong.

The chain runs in three parts, so that an ingest can spread one long clip's
TV-L1 pairs over several tasks (``extract_sample`` runs them in sequence):

  prepare_sample  decode, face, align, motion, apex landmarks -> ``PreparedClip``
                  (the aligned onset crop and the K selected crops)
  flow_pairs      tvl1 + strain for some of the selected frames -> ``PairFlows``
  finish_sample   rois, aus, graph over all the pairs -> ``SampleFeatures``

Each TV-L1 pair is independent of the others (a solver keeps no state between
pairs), so any split of the pairs gives byte-identical features.
"""
from __future__ import annotations

import logging
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Iterator, Sequence

import numpy as np

from schemas.pipeline_config import PipelineConfig
from schemas.sample_features import SampleFeatures
from schemas.sample_record import SampleRecord
from schemas.store_spec import APEX_IMAGE, DIFFERENCE_IMAGE, DYNAMIC_IMAGE, MESTI_IMAGE, ONSET_IMAGE
from stag_features.errors import NoFaceError, SampleError
from stag_features.extract.align import align_clip, landmarks_on_crop
from stag_features.extract.appearance import appearance_images
from stag_features.extract.aus import au_truth_vector, flow_au_cue
from stag_features.extract.face import LandmarkBackend, make_backend
from stag_features.extract.flow import configure_opencv_threads, optical_strain, tvl1_flows_from_onset
from stag_features.extract.frames import count_frames, read_frames
from stag_features.extract.graph import au_roi_sets, dynamic_edge_weights
from stag_features.extract.motion import analyse_motion
from stag_features.extract.roi_features import roi_features
from stag_features.extract.rois import au_roi_indices, inter_ocular_distance, roi_boxes, roi_names, static_edges
from stag_features.extract.selection import select_frames

log = logging.getLogger(__name__)


class _Stages:
    """Times each stage and turns a plain ValueError into a SampleError naming the stage."""

    def __init__(self, sample: str):
        self.sample = sample
        self.timings: dict[str, float] = {}

    @contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        except SampleError:
            raise
        except ValueError as exc:
            raise SampleError(self.sample, name, str(exc)) from exc
        finally:
            self.timings[name] = self.timings.get(name, 0.0) + time.perf_counter() - start


def analysed_range(record: SampleRecord, n_frames: int) -> tuple[int, int]:
    """(start, stop) positions in the source: onset..offset inclusive, or the whole clip."""
    sid = record.sample_id
    start = record.onset_index if record.onset_index is not None else 0
    stop = record.offset_index + 1 if record.offset_index is not None else n_frames
    if record.onset_index is not None and record.offset_index is not None and record.onset_index >= record.offset_index:
        raise SampleError(sid, "decode", f"onset index {record.onset_index} is not before offset index "
                          f"{record.offset_index}: nothing moves between them")
    if not 0 <= start < n_frames or stop > n_frames:
        raise SampleError(sid, "decode", f"onset..offset positions {start}..{stop - 1} fall outside the clip's "
                          f"{n_frames} frames")
    if stop - start < 2:
        raise SampleError(sid, "decode", f"only {stop - start} frame(s) to analyse; need the onset and at least one more")
    if record.apex_index is not None and not start <= record.apex_index < stop:
        raise SampleError(sid, "decode", f"apex index {record.apex_index} is outside the analysed frames "
                          f"{start}..{stop - 1}")
    return start, stop


def _stack_in_memory(frames: np.ndarray | Sequence[np.ndarray], sid: str) -> np.ndarray:
    shapes = {np.asarray(f).shape for f in frames}
    if len(shapes) > 1:
        raise SampleError(sid, "decode", f"frames differ in size: {sorted(shapes)}; every frame of a clip must match")
    stacked = np.asarray(frames)
    if stacked.ndim not in (3, 4) or stacked.dtype != np.uint8 or (stacked.ndim == 4 and stacked.shape[-1] != 3):
        raise SampleError(sid, "decode", f"frames must be uint8 (T, H, W) gray or (T, H, W, 3) BGR, got "
                          f"{stacked.dtype} {stacked.shape}")
    if stacked.ndim == 3:  # grayscale: the face stage takes BGR
        stacked = np.repeat(stacked[..., None], 3, axis=-1)
    return stacked


def load_frames(record: SampleRecord, frames: np.ndarray | Sequence[np.ndarray] | None,
                undecodable: str = "fail") -> tuple[np.ndarray, np.ndarray, tuple[int, ...]]:
    """The analysed frames (T, H, W[, 3]) uint8, their positions in the source (T,) int64, and the
    source positions skipped as undecodable. ``undecodable`` (``face.undecodable_frames``): "fail"
    raises SampleError naming the frames that cannot be decoded, "skip" leaves them out."""
    sid = record.sample_id
    if frames is not None:
        clip = _stack_in_memory(frames, sid)
        start, stop = analysed_range(record, len(clip))
        return clip[start:stop], np.arange(start, stop, dtype=np.int64), ()
    if record.source is None:
        raise SampleError(sid, "decode", "the record has no frame source and no frames were given")
    start, stop = analysed_range(record, count_frames(record.source))
    batch = read_frames(record.source, start=start, stop=stop, sample=sid)
    if len(batch.frames) < 2:
        raise SampleError(sid, "decode", f"only {len(batch.frames)} decodable frame(s) in {start}..{stop - 1} "
                          f"(undecodable: {batch.undecodable})")
    if int(batch.positions[0]) != start:
        raise SampleError(sid, "decode", f"the onset frame (position {start}) could not be decoded")
    if batch.undecodable and undecodable == "fail":
        shown = "; ".join(batch.reasons.get(p, f"position {p}") for p in batch.undecodable[:5])
        more = f" and {len(batch.undecodable) - 5} more" if len(batch.undecodable) > 5 else ""
        raise SampleError(sid, "decode", f"{len(batch.undecodable)} frame(s) in {start}..{stop - 1} cannot be "
                          f"decoded: {shown}{more} (face.undecodable_frames: skip analyses the clip without them)")
    return batch.frames, np.asarray(batch.positions, dtype=np.int64), tuple(batch.undecodable)


def frame_numbers(record: SampleRecord, positions: np.ndarray) -> np.ndarray:
    """Sheet frame numbers of source positions (positions themselves when the sheet has no onset)."""
    if record.onset is not None and record.onset_index is not None:
        return (positions - record.onset_index + record.onset).astype(np.int32)
    return positions.astype(np.int32)



@dataclass
class PreparedClip:
    """A clip after ``prepare_sample``: everything measured over all its frames, and the aligned
    onset crop with the K selected crops, all that the TV-L1 pairs and ``finish_sample`` need."""

    record: SampleRecord
    frame_numbers: np.ndarray  # (T,) int32
    motion_curve: np.ndarray  # (T,) float32
    ranked_frames: np.ndarray  # (T,) int32
    head_motion: np.ndarray  # (T,) float32
    apex_estimated: int
    apex_annotated: int
    selected_frames: np.ndarray  # (K,) int32 positions 0..T-1
    onset_crop: np.ndarray  # (H, W) uint8
    selected_crops: np.ndarray  # (K, H, W) uint8
    landmarks_onset: np.ndarray  # (68, 2) float32
    landmarks_apex: np.ndarray  # (68, 2) float32
    undecodable_frames: tuple[int, ...] = ()  # frame numbers skipped as undecodable
    appearance: dict[str, np.ndarray] = field(default_factory=dict)  # APPEARANCE_ARRAYS name -> (C, S, S) float32
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def sample_id(self) -> str:
        return self.record.sample_id

    @property
    def n_pairs(self) -> int:
        """TV-L1 pairs of the clip: onset -> each selected frame."""
        return len(self.selected_frames)


@dataclass
class PairFlows:
    """TV-L1 flow and strain of the selected frames ``first``..``first + len(flow) - 1`` of a clip."""

    sample_id: str
    first: int
    flow: np.ndarray  # (n, 2, H, W) float32
    strain: np.ndarray  # (n, H, W) float32
    timings: dict[str, float] = field(default_factory=dict)


# SampleFeatures fields that PreparedClip holds under the same name
_CARRIED_FIELDS = ("record", "undecodable_frames", "frame_numbers", "motion_curve", "ranked_frames", "head_motion",
                   "apex_estimated", "apex_annotated", "selected_frames", "landmarks_onset", "landmarks_apex")


def _merged(*timings: dict[str, float]) -> dict[str, float]:
    total: dict[str, float] = {}
    for part in timings:
        for name, seconds in part.items():
            total[name] = total.get(name, 0.0) + seconds
    return total


def prepare_sample(record: SampleRecord, config: PipelineConfig, backend: LandmarkBackend | None = None,
                   frames: np.ndarray | Sequence[np.ndarray] | None = None) -> PreparedClip:
    """Decode, face, align, motion and the apex landmarks: the part of the chain before TV-L1."""
    sid = record.sample_id
    stage = _Stages(sid)
    configure_opencv_threads(config.tvl1)  # one OpenCV thread per process (default): parallelism is per process
    with stage("decode"):
        clip, positions, skipped = load_frames(record, frames, config.face.undecodable_frames)
    with stage("face"):
        backend = backend or make_backend(config.face)
    with stage("align"):
        aligned = align_clip(clip, config, backend, onset=0, sample=sid, positions=positions)
    crops = aligned.crops
    with stage("motion"):
        no_face = set(aligned.missing_face)  # non-empty only when face.missing_face == "skip"
        motion = analyse_motion(crops, aligned.landmarks_onset, config.motion, onset=0, excluded=no_face)
        apex_annotated = -1
        if record.apex_index is not None:
            matches = np.flatnonzero(positions == record.apex_index)
            if len(matches) == 0:
                raise SampleError(sid, "motion", f"the annotated apex (position {record.apex_index}) was not decoded")
            apex_annotated = int(matches[0])
        apex = apex_annotated if apex_annotated >= 0 else motion.apex
        selected = select_frames(motion.ranked, apex, config.selection, onset=0, excluded=no_face)
    with stage("face"):
        try:
            landmarks_apex = np.asarray(landmarks_on_crop(crops[apex], backend, sid, config.align), np.float32)
        except NoFaceError:
            if config.face.missing_face == "fail":
                raise
            log.warning("sample %s: no face on the aligned apex crop (position %d); onset landmarks stored "
                        "as apex landmarks (face.missing_face='skip')", sid, apex)
            landmarks_apex = np.asarray(aligned.landmarks_onset, dtype=np.float32)
    appearance = {}
    if config.appearance.enabled:
        with stage("appearance"):  # positions: the onset at 0, the analysed frames end at the offset
            images = appearance_images(crops, 0, apex, None, config.appearance, sample=sid)
            appearance = {ONSET_IMAGE: images.onset, APEX_IMAGE: images.apex, DIFFERENCE_IMAGE: images.difference,
                          DYNAMIC_IMAGE: images.dynamic, MESTI_IMAGE: images.mesti}
    return PreparedClip(
        record=record,
        frame_numbers=frame_numbers(record, positions),
        motion_curve=motion.curve.astype(np.float32),
        ranked_frames=motion.ranked.astype(np.int32),
        head_motion=np.asarray(aligned.head_motion, dtype=np.float32),
        apex_estimated=int(motion.apex),
        apex_annotated=apex_annotated,
        selected_frames=selected.astype(np.int32),
        onset_crop=np.asarray(crops[0], dtype=np.uint8),
        selected_crops=np.asarray(crops[selected]),
        landmarks_onset=np.asarray(aligned.landmarks_onset, dtype=np.float32),
        landmarks_apex=landmarks_apex,
        undecodable_frames=tuple(int(n) for n in frame_numbers(record, np.asarray(skipped, dtype=np.int64))),
        appearance=appearance,
        timings=stage.timings,
    )


def flow_pairs(prepared: PreparedClip, config: PipelineConfig, first: int = 0, count: int | None = None) -> PairFlows:
    """TV-L1 flow onset -> selected frames ``first``..``first + count - 1`` (all from ``first`` when
    ``count`` is None; clipped to the clip's pairs, so a range past the end gives no pairs) and their strain."""
    stage = _Stages(prepared.sample_id)
    configure_opencv_threads(config.tvl1)
    start = min(max(first, 0), prepared.n_pairs)
    stop = prepared.n_pairs if count is None else min(prepared.n_pairs, start + max(count, 0))
    with stage("tvl1"):
        flow = tvl1_flows_from_onset(prepared.onset_crop, prepared.selected_crops[start:stop], config.tvl1)
    with stage("strain"):
        strain = optical_strain(flow)
    return PairFlows(prepared.sample_id, start, flow.astype(np.float32), strain.astype(np.float32), stage.timings)


def _joined_pairs(prepared: PreparedClip, pairs: Sequence[PairFlows]) -> tuple[np.ndarray, np.ndarray]:
    """(flow, strain) of every pair in selection order; the parts must cover each pair exactly once."""
    ordered = sorted(pairs, key=lambda p: p.first)
    covered = [i for p in ordered for i in range(p.first, p.first + len(p.flow))]
    if not ordered or covered != list(range(prepared.n_pairs)):
        raise ValueError(f"the flow parts cover selected frames {covered}, not 0..{prepared.n_pairs - 1} once each")
    return np.concatenate([p.flow for p in ordered]), np.concatenate([p.strain for p in ordered])


def finish_sample(prepared: PreparedClip, pairs: Sequence[PairFlows], config: PipelineConfig) -> SampleFeatures:
    """ROIs, AU cue and graph over the flow of every pair: the clip's ``SampleFeatures``."""
    sid = prepared.sample_id
    stage = _Stages(sid)
    with stage("tvl1"):
        flow, strain = _joined_pairs(prepared, pairs)
    with stage("rois"):
        names = list(roi_names(config.rois))
        boxes = np.asarray(roi_boxes(prepared.landmarks_onset, config.rois, config.align.crop_size), dtype=np.float32)
        patches, stats = roi_features(flow, boxes, config.roi_features)
    with stage("aus"):
        iod = inter_ocular_distance(prepared.landmarks_onset, config.rois)
        activations, au_warnings = flow_au_cue(flow, boxes, names, prepared.landmarks_onset, iod, config.aus)
        for warning in au_warnings:  # an AU without ROIs in this ROI set keeps activation 0
            log.warning("sample %s: %s", sid, warning)
        truth = au_truth_vector(prepared.record, config.aus)
    with stage("graph"):
        acts = au_roi_sets(names, config.aus, au_roi_indices(config.rois))
        weights = dynamic_edge_weights(activations, config.aus.aus, static_edges(config.rois), acts, config.graph)
    return SampleFeatures(
        **{name: getattr(prepared, name) for name in _CARRIED_FIELDS},
        flow=flow,
        strain=strain,
        onset_face=prepared.onset_crop,
        roi_boxes=boxes,
        roi_patches=patches,
        roi_stats=stats,
        au_activations=activations.astype(np.float32),
        au_truth=truth,
        edge_weights=weights,
        extras=dict(prepared.appearance),
        timings=_merged(prepared.timings, *(p.timings for p in pairs), stage.timings),
    )


def extract_sample(record: SampleRecord, config: PipelineConfig, backend: LandmarkBackend | None = None,
                   frames: np.ndarray | Sequence[np.ndarray] | None = None) -> SampleFeatures:
    """Run the whole chain for one sample: the three parts in sequence (see the module docstring)."""
    prepared = prepare_sample(record, config, backend=backend, frames=frames)
    return finish_sample(prepared, [flow_pairs(prepared, config)], config)
