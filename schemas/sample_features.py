"""SampleFeatures: everything the per-sample chain computes for one clip.

This is the contract between the feature chain (stag_features.extract.sample_pipeline)
and the store writer (stag_features.store.slots). Shapes use the store's dimension
names (see schemas/store_spec.py):

  T = clip frames analysed (onset..offset, or the whole clip), K = selected
  frames, R = ROIs, A = AUs, E = graph edges, H = W = crop size, P = ROI patch.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from schemas.sample_record import SampleRecord


@dataclass
class SampleFeatures:
    record: SampleRecord
    # motion over all frames ------------------------------------------------
    frame_numbers: np.ndarray  # (T,) int32   frame number (as in the sheet) of each analysed frame
    motion_curve: np.ndarray  # (T,) float32  motion magnitude relative to onset, cheap flow
    ranked_frames: np.ndarray  # (T,) int32   positions 0..T-1 sorted by decreasing motion
    head_motion: np.ndarray  # (T,) float32   residual head motion per frame (px at crop size)
    apex_estimated: int  # position 0..T-1 of the estimated apex
    apex_annotated: int  # position 0..T-1 of the sheet's apex, -1 when the sheet has none
    # selected frames ------------------------------------------------------
    selected_frames: np.ndarray  # (K,) int32  positions 0..T-1, in time order
    flow: np.ndarray  # (K, 2, H, W) float32   TV-L1 onset -> selected frame, (u, v) in px
    strain: np.ndarray  # (K, H, W) float32    optical strain magnitude
    # face -------------------------------------------------------------------
    onset_face: np.ndarray  # (H, W) uint8        aligned grayscale onset frame
    landmarks_onset: np.ndarray  # (68, 2) float32  (x, y) on the aligned onset frame
    landmarks_apex: np.ndarray  # (68, 2) float32   (x, y) on the aligned apex frame
    roi_boxes: np.ndarray  # (R, 4) float32     x0, y0, x1, y1 on the aligned crop
    # ROI / AU / graph -------------------------------------------------------
    roi_patches: np.ndarray  # (K, R, 2, P, P) float32  ROI flow resampled to P x P
    roi_stats: np.ndarray  # (K, R, 4) float32  mean u, mean v, mean magnitude, dominant direction (rad)
    au_activations: np.ndarray  # (K, A) float32  flow-derived AU cue (not a trained detector)
    au_truth: np.ndarray  # (A,) int8  1 if the sheet codes the AU, 0 if not, -1 if the sheet says '?'
    edge_weights: np.ndarray  # (K, E) float32  AU-guided dynamic weights of the config's edges
    undecodable_frames: tuple[int, ...] = ()  # frame numbers skipped as undecodable (where the config allows)
    # optional arrays (schemas.store_spec.OPTIONAL_ARRAYS) by name, for stores whose layout lists them:
    # source_dataset () str; apex_face (F, F) uint8 at the layout's face_size
    extras: dict[str, np.ndarray] = field(default_factory=dict)
    # where the time went --------------------------------------------------------
    timings: dict[str, float] = field(default_factory=dict)  # seconds per stage

    @property
    def sample_id(self) -> str:
        return self.record.sample_id
