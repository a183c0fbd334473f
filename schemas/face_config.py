"""Configuration of the face stage: detection, landmarks, alignment, ROIs.

Owned by the face pipeline (stag_features.extract.face / align / rois). Every
parameter has its default here; nothing in code paths hard-codes these values.

Landmark indices are 0-based iBUG 68-point indices. ROI names use the
*subject's* side, as FACS does: ``eye_right`` is the subject's right eye, which
appears on the image's left (iBUG points 36-41).
"""
from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class FaceConfig(_Frozen):
    """Face detection, subject choice and 68-point landmarking."""

    backend: Literal["dlib", "fan"] = Field(
        "dlib", description="dlib: HOG detector + iBUG 68-point shape predictor (embedded); fan: face-alignment"
    )
    detect_max_side: int = Field(
        800,
        ge=64,
        le=8192,
        description="frames are shrunk so their longer side is at most this before detection (landmarks are "
        "still placed at full resolution)",
    )
    detector_upsample: int = Field(1, ge=0, le=3, description="dlib HOG pyramid upsampling (finds faces >= 40 px)")
    detector_threshold: float = Field(
        -0.3,
        ge=-2.0,
        le=2.0,
        description="dlib HOG score threshold (0 = dlib's default). Slightly negative keeps weak but real "
        "frontal faces (old, low-contrast photographs score about -0.1); the false faces this admits are "
        "smaller than the subject and lose the subject choice below",
    )
    refine_face_sizes: tuple[int, ...] = Field(
        (80, 96, 115, 138, 166),
        description="dlib: the chosen subject is re-detected (no upsampling) in a window around its first box "
        "scaled so the face measures each of these sizes (px; 80 is the HOG window, then x1.2 steps); the "
        "landmarks placed at full resolution from each box are averaged (the shape predictor depends on its "
        "box, and one pyramid level's box is coarse). Empty = off. Applied to the subject only "
        "(onset frames, stills, aligned crops), not to tracking",
    )
    refine_window: float = Field(
        2.0, ge=1.2, le=6.0, description="side of the refinement window, in first-box sides"
    )
    subject_rule: Literal["largest", "highest_score"] = Field(
        "largest",
        description="which detection is the subject when there is no previous one: the largest box (the "
        "person a micro-expression camera films fills the frame; background faces and false detections on "
        "texture are smaller), or the most confident",
    )
    track_min_iou: float = Field(
        0.3,
        ge=0.0,
        le=1.0,
        description="with a previous detection, the subject is the detection overlapping it most, if its "
        "intersection-over-union reaches this; otherwise the subject is considered absent from the frame",
    )
    track_window: float = Field(
        2.0,
        ge=1.2,
        le=6.0,
        description="frames after the onset are searched for the face only in a window of this many onset "
        "box sides around the onset box (cheap), then in the whole frame if that fails",
    )
    track_face_size: int = Field(
        120, ge=80, le=400, description="the search window is scaled so the onset face box is this many px"
    )
    track_upsample: int = Field(
        0,
        ge=0,
        le=3,
        description="HOG upsampling in the search window: none is needed once the face is track_face_size px "
        "(above the 80 px HOG window)",
    )
    missing_face: Literal["fail", "skip"] = Field(
        "fail", description="frames without a face: fail the clip, or skip those frames"
    )
    undecodable_frames: Literal["fail", "skip"] = Field(
        "fail", description="frames of a clip that cannot be decoded (a damaged image, a JPEG cut short): fail "
        "the clip naming them, or skip them, their frame numbers recorded in the store (undecodable_frames)"
    )
    fan_device: str = Field("cpu", description="torch device for the FAN backend")
    fan_flip_input: bool = Field(
        False, description="FAN: also run the mirrored face and average heatmaps (2x cost, slightly steadier)"
    )
    fan_detector_threshold: float = Field(
        0.5, ge=0.0, le=1.0, description="S3FD confidence a face needs (face-alignment's own default)"
    )
    fan_max_faces: int = Field(
        4, ge=1, le=64, description="FAN places landmarks on at most this many detections (most confident first)"
    )


class AlignConfig(_Frozen):
    """Similarity alignment from the onset frame to a canonical face.

    The canonical template puts the eye centres and the nose tip at fixed
    fractions of the crop; the least-squares similarity (rotation, isotropic
    scale, translation) mapping the onset frame's points onto it is used for
    every frame of the clip. With the defaults (eye centres 0.28 crop apart at
    0.35 height) a frontal face's brows sit at ~0.26, its chin at ~0.85-0.90 and
    its jaw line at ~0.15 / 0.85 of the crop, so all 68 points stay inside.
    """

    crop_size: int = Field(224, ge=32, le=1024, description="side (px) of the aligned square face crop")
    template_landmarks: tuple[tuple[int, ...], ...] = Field(
        ((36, 37, 38, 39, 40, 41), (42, 43, 44, 45, 46, 47), (30,)),
        description="groups of landmarks whose means are the alignment points: eye centres (robust to "
        "blinks and lid motion, unlike single corners) and the nose tip (rigid)",
    )
    template_points: tuple[tuple[float, float], ...] = Field(
        ((0.36, 0.35), (0.64, 0.35), (0.50, 0.52)),
        description="(x, y) of each group on the crop, as fractions of crop_size; nose tip 0.6 eye-distances "
        "below the eye line, as on a frontal face",
    )
    crop_padding: float = Field(
        0.25,
        ge=0.0,
        le=1.0,
        description="landmarks on an aligned crop: the crop is padded by this fraction of its side (edges "
        "replicated) so the detector sees the face with context, as in a full frame",
    )
    head_motion_method: Literal["ecc", "phase_correlation"] = Field(
        "ecc",
        description="residual head translation of each crop against the onset crop: ECC (Evangelidis & Psarakis "
        "2008, invariant to brightness and contrast change) or phase correlation (cheaper, biased under noise and "
        "lighting drift)",
    )
    ecc_iterations: int = Field(50, ge=1, le=1000, description="ECC iteration limit")
    ecc_epsilon: float = Field(1e-4, gt=0, description="ECC stops when the update is below this (px)")
    ecc_gauss_filter: int = Field(5, ge=1, le=15, description="ECC's Gaussian pre-filter size (odd, px)")
    head_motion_window: bool = Field(
        True, description="phase correlation: apply a Hann window (suppresses the crop border's edges)"
    )

    @model_validator(mode="after")
    def _same_length(self) -> "AlignConfig":
        if len(self.template_landmarks) != len(self.template_points) or len(self.template_points) < 2:
            raise ValueError(
                f"align: {len(self.template_landmarks)} template_landmarks groups but "
                f"{len(self.template_points)} template_points; need the same number, at least 2"
            )
        return self


class RoiSpec(_Frozen):
    """One facial region: a box around some landmarks, grown by a fraction of
    the inter-ocular distance."""

    name: str
    landmarks: tuple[int, ...]
    margin: float = Field(0.1, ge=0.0, le=1.0, description="box margin as a fraction of inter-ocular distance")


def _roi(name: str, *landmarks: int, margin: float = 0.1) -> RoiSpec:
    return RoiSpec(name=name, landmarks=tuple(landmarks), margin=margin)


# Regions that facial action units move (FACS, Ekman, Friesen & Hager 2002),
# each the bounding box of the iBUG points that outline it. Side = subject's.
DEFAULT_ROIS: tuple[RoiSpec, ...] = (
    _roi("inner_brow_right", 20, 21),
    _roi("inner_brow_left", 22, 23),
    _roi("outer_brow_right", 17, 18, 19),
    _roi("outer_brow_left", 24, 25, 26),
    _roi("glabella", 21, 22, 27),
    _roi("eye_right", 36, 37, 38, 39, 40, 41, margin=0.08),
    _roi("eye_left", 42, 43, 44, 45, 46, 47, margin=0.08),
    _roi("nose", 28, 29, 30, 31, 32, 33, 34, 35),  # bridge and wings (AU9 wrinkles, AU10 wing raise)
    _roi("cheek_right", 41, 31, 48),  # infraorbital cheek and nasolabial fold
    _roi("cheek_left", 46, 35, 54),
    _roi("mouth_corner_right", 48, 49, 59, 60, margin=0.12),
    _roi("mouth_corner_left", 54, 53, 55, 64, margin=0.12),
    _roi("upper_lip", 33, 50, 51, 52),  # philtrum and upper lip
    _roi("lower_lip", 56, 57, 58, 65, 66, 67),
    _roi("chin", 57, 7, 8, 9),  # chin boss between lower lip and chin (AU17)
)

# Which ROIs each AU moves (FACS appearance changes).
DEFAULT_AU_ROIS: dict[int, tuple[str, ...]] = {
    1: ("inner_brow_right", "inner_brow_left"),
    2: ("outer_brow_right", "outer_brow_left"),
    4: ("inner_brow_right", "inner_brow_left", "glabella"),
    5: ("eye_right", "eye_left"),
    6: ("cheek_right", "cheek_left", "eye_right", "eye_left"),
    7: ("eye_right", "eye_left"),
    9: ("nose", "glabella"),
    10: ("upper_lip", "nose"),
    12: ("mouth_corner_right", "mouth_corner_left", "cheek_right", "cheek_left"),
    14: ("mouth_corner_right", "mouth_corner_left"),
    15: ("mouth_corner_right", "mouth_corner_left", "lower_lip"),
    17: ("chin", "lower_lip"),
    20: ("mouth_corner_right", "mouth_corner_left"),
    23: ("upper_lip", "lower_lip"),
    24: ("upper_lip", "lower_lip"),
    25: ("upper_lip", "lower_lip"),
    26: ("lower_lip", "chin"),
}

# Regions that touch on the face (skin between them is shared): the static graph.
DEFAULT_ADJACENCY: tuple[tuple[str, str], ...] = (
    ("outer_brow_right", "inner_brow_right"),
    ("inner_brow_right", "glabella"),
    ("glabella", "inner_brow_left"),
    ("inner_brow_left", "outer_brow_left"),
    ("outer_brow_right", "eye_right"),
    ("inner_brow_right", "eye_right"),
    ("outer_brow_left", "eye_left"),
    ("inner_brow_left", "eye_left"),
    ("glabella", "nose"),
    ("eye_right", "nose"),
    ("eye_left", "nose"),
    ("eye_right", "cheek_right"),
    ("eye_left", "cheek_left"),
    ("nose", "cheek_right"),
    ("nose", "cheek_left"),
    ("nose", "upper_lip"),
    ("cheek_right", "mouth_corner_right"),
    ("cheek_left", "mouth_corner_left"),
    ("cheek_right", "upper_lip"),
    ("cheek_left", "upper_lip"),
    ("upper_lip", "mouth_corner_right"),
    ("upper_lip", "mouth_corner_left"),
    ("upper_lip", "lower_lip"),
    ("mouth_corner_right", "lower_lip"),
    ("mouth_corner_left", "lower_lip"),
    ("lower_lip", "chin"),
    ("mouth_corner_right", "chin"),
    ("mouth_corner_left", "chin"),
)


class RoiConfig(_Frozen):
    """Named ROI set, AU-to-ROI map and static anatomical adjacency."""

    rois: tuple[RoiSpec, ...] = DEFAULT_ROIS
    au_rois: dict[int, tuple[str, ...]] = Field(default_factory=lambda: dict(DEFAULT_AU_ROIS))
    adjacency: tuple[tuple[str, str], ...] = DEFAULT_ADJACENCY
    iod_landmarks: tuple[int, int] = Field(
        (36, 45), description="outer eye corners: the inter-ocular distance that scales margins (and NME)"
    )

    @model_validator(mode="after")
    def _names_resolve(self) -> "RoiConfig":
        names = [r.name for r in self.rois]
        duplicated = sorted({n for n in names if names.count(n) > 1})
        if duplicated:
            raise ValueError(f"rois: names {duplicated} appear more than once")
        for roi in self.rois:
            bad = [i for i in roi.landmarks if not 0 <= i < 68]
            if bad or not roi.landmarks:
                raise ValueError(f"roi {roi.name!r}: landmarks must be 1+ iBUG indices in 0..67, got {roi.landmarks}")
        known = set(names)
        for au, rois in self.au_rois.items():
            unknown = [r for r in rois if r not in known]
            if unknown:
                raise ValueError(f"au_rois[{au}] names unknown ROIs {unknown}; known: {names}")
        for a, b in self.adjacency:
            if a not in known or b not in known or a == b:
                raise ValueError(f"adjacency ({a!r}, {b!r}): both must be distinct ROI names from {names}")
        return self
