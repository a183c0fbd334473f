"""AU activation cues from flow, and the ground-truth AU vector of a record.

``flow_au_cue`` is a hand-made, flow-derived cue, NOT a trained AU detector:
it measures how far the regions an AU moves have moved in the direction that
AU moves them, and nothing more. Two AUs that move the same region the same
way (AU6 and AU7 lower lids, say) cannot be told apart by it.

For AU a with direction specs {(ROI r, unit direction d_r)} (config
``aus.directions``) and a flow f (2, H, W):

    g         = median of f over the face mask   (or 0; ``reference_motion``)
    p_r       = mean_{x in box r} (f(x) - g) . d_r(x)
    cue_a     = scale * mean_r p_r / IOD         (clipped at 0 when ``positive_only``)

IOD is the inter-ocular distance on the aligned onset crop, so the cue is in
percent of IOD by default (scale 100). d_r is the spec's (dx, dy) normalised,
with the x part pointing toward or away from the face midline (mean x of
``midline_landmarks``) for the midline modes, or mirrored on the image's
left half when ``mirror_x``.
"""
from __future__ import annotations

import numpy as np

from schemas.motion_config import AUConfig, AUDirection
from schemas.sample_record import SampleRecord
from stag_features.extract.motion import face_mask
from stag_features.extract.roi_features import box_pixels


def au_names(config: AUConfig) -> list[str]:
    """Names in output order, e.g. ``["AU1", "AU2", ...]`` (``AUConfig.names``)."""
    return config.names()


def direction_vector(spec: AUDirection, roi_centre_x: float, midline_x: float) -> np.ndarray:
    """Unit (dx, dy) for one ROI of one AU (zero vector when the spec has no direction)."""
    dx, dy = spec.dx, spec.dy
    side = np.sign(roi_centre_x - midline_x)  # +1 right of the midline (image coordinates)
    if spec.mode == "away_midline":
        dx = side
    elif spec.mode == "toward_midline":
        dx = -side
    elif spec.mirror_x and side < 0:
        dx = -dx
    vec = np.array([dx, dy], dtype=np.float64)
    norm = np.linalg.norm(vec)
    return vec / norm if norm > 0 else vec


def reference_motion(flow: np.ndarray, landmarks: np.ndarray, config: AUConfig) -> np.ndarray:
    """(K, 2) motion subtracted from every pixel before projection (zeros when disabled)."""
    if config.reference_motion == "none":
        return np.zeros((flow.shape[0], 2), dtype=np.float64)
    mask = face_mask(landmarks, flow.shape[-2:], config.face_margin)
    return np.median(flow[:, :, mask], axis=2).astype(np.float64)


def flow_au_cue(flow: np.ndarray, boxes: np.ndarray, roi_names: list[str], landmarks_onset: np.ndarray,
                iod: float, config: AUConfig) -> tuple[np.ndarray, list[str]]:
    """AU activation cue per frame, (K, A) float32, and warnings about AUs whose ROIs are absent.

    ``flow`` (K, 2, H, W) onset -> frame; ``boxes`` (R, 4) named by ``roi_names``;
    ``landmarks_onset`` (68, 2) on the aligned onset crop; ``iod`` in px.
    """
    flow = np.asarray(flow, dtype=np.float32)
    if flow.ndim != 4 or flow.shape[1] != 2:
        raise ValueError(f"flow_au_cue: flow must be (K, 2, H, W), got {flow.shape}")
    if len(boxes) != len(roi_names):
        raise ValueError(f"flow_au_cue: {len(boxes)} boxes but {len(roi_names)} ROI names")
    if config.normalise_by_iod and not iod > 0:
        raise ValueError(f"flow_au_cue: inter-ocular distance must be positive, got {iod}")
    index = {name: i for i, name in enumerate(roi_names)}
    midline_x = float(np.asarray(landmarks_onset)[list(config.midline_landmarks), 0].mean())
    shape = flow.shape[-2:]
    ref = reference_motion(flow, landmarks_onset, config)  # (K, 2)
    denominator = iod if config.normalise_by_iod else 1.0
    cues = np.zeros((flow.shape[0], len(config.aus)), dtype=np.float32)
    warnings: list[str] = []
    for a, au in enumerate(config.aus):
        projections = []
        for spec in config.directions[au]:
            if spec.roi not in index:
                continue
            box = boxes[index[spec.roi]]
            x0, y0, x1, y1 = box_pixels(box, shape)
            direction = direction_vector(spec, 0.5 * (box[0] + box[2]), midline_x)
            mean_flow = flow[:, :, y0:y1, x0:x1].mean(axis=(2, 3)) - ref  # (K, 2)
            projections.append(mean_flow @ direction)
        if not projections:
            warnings.append(f"AU{au}: none of its ROIs {[s.roi for s in config.directions[au]]} is in the ROI set")
            continue
        value = np.mean(projections, axis=0) * config.scale / denominator
        cues[:, a] = np.maximum(value, 0.0) if config.positive_only else value
    return cues, warnings


def au_truth_vector(record: SampleRecord, config: AUConfig) -> np.ndarray:
    """Ground-truth AU vector (A,) int8 from the record's sheet annotation:
    1 if the AU is coded (including alternatives such as ``R6 or R12``), 0 if
    not, -1 for every AU when the sheet's AU cell says '?'."""
    if record.aus.unknown:
        return np.full(len(config.aus), -1, dtype=np.int8)
    coded = set(record.aus.au_numbers(include_alternatives=True))
    return np.array([1 if au in coded else 0 for au in config.aus], dtype=np.int8)
