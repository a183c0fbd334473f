"""Alignment of a clip to a canonical face with ONE similarity transform.

Micro-expressions move the face by less than a pixel; re-aligning every frame
to its own landmarks would add jitter larger than that signal. So:

1. the subject is detected on the onset frame (``face.detect_subject``);
2. the least-squares similarity (rotation, isotropic scale, translation;
   Umeyama 1991, no reflection) maps the onset's eye centres and nose tip onto
   the template of ``AlignConfig``;
3. every frame is warped with that same transform to an S x S grayscale crop
   (S = ``AlignConfig.crop_size``);
4. every other frame is only checked for the face (cheap windowed detection,
   ``face.detect_near``): frames without it are reported and, per
   ``FaceConfig.missing_face``, fail the clip or are kept flagged;
5. residual rigid head motion per frame is measured on the crops against the
   onset crop (ECC translation, sub-pixel, px at crop size; 0 at the onset),
   so users can filter clips that move.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

from schemas.face_config import AlignConfig
from schemas.pipeline_config import PipelineConfig
from stag_features.errors import NoFaceError
from stag_features.extract.face import FaceDetection, LandmarkBackend, choose_subject, detect_near, detect_subject


@dataclass
class AlignedClip:
    """A clip on the canonical face.

    crops            (T, S, S) uint8 grayscale, all warped by ``transform``
    transform        (2, 3) float64, source frame px -> crop px
    landmarks_onset  (68, 2) float32 on the aligned onset crop
    head_motion      (T,) float32 residual rigid motion (px at crop size), 0 at the onset
    face_found       (T,) bool
    missing_face     clip indices (0-based) of frames without the face
    onset_detection  the subject on the onset frame, in source frame px
    """

    crops: np.ndarray
    transform: np.ndarray
    landmarks_onset: np.ndarray
    head_motion: np.ndarray
    face_found: np.ndarray
    missing_face: list[int] = field(default_factory=list)
    onset_detection: FaceDetection | None = None


def similarity_transform(source: np.ndarray, target: np.ndarray) -> np.ndarray:
    """(2, 3) least-squares similarity mapping points ``source`` (N, 2) onto ``target`` (N, 2)."""
    source = np.asarray(source, dtype=np.float64)
    target = np.asarray(target, dtype=np.float64)
    mean_s, mean_t = source.mean(axis=0), target.mean(axis=0)
    s, t = source - mean_s, target - mean_t
    variance = (s**2).sum() / len(s)
    if variance <= 0:
        raise ValueError("similarity_transform: source points coincide")
    covariance = t.T @ s / len(s)
    u, d, vt = np.linalg.svd(covariance)
    sign = np.diag([1.0, np.sign(np.linalg.det(u @ vt)) or 1.0])
    rotation = u @ sign @ vt
    scale = float(np.trace(np.diag(d) @ sign)) / variance
    matrix = np.empty((2, 3))
    matrix[:, :2] = scale * rotation
    matrix[:, 2] = mean_t - scale * rotation @ mean_s
    return matrix


def apply_transform(points: np.ndarray, transform: np.ndarray) -> np.ndarray:
    """Points (N, 2) mapped by a (2, 3) affine transform, float32."""
    points = np.asarray(points, dtype=np.float64)
    return (points @ transform[:, :2].T + transform[:, 2]).astype(np.float32)


def canonical_transform(landmarks: np.ndarray, config: AlignConfig) -> np.ndarray:
    """(2, 3) similarity from a face's landmarks (68, 2) to the template at crop size."""
    landmarks = np.asarray(landmarks, dtype=np.float64)
    source = np.array([landmarks[list(group)].mean(axis=0) for group in config.template_landmarks])
    target = np.array(config.template_points, dtype=np.float64) * config.crop_size
    return similarity_transform(source, target)


def warp_to_crop(frame: np.ndarray, transform: np.ndarray, crop_size: int) -> np.ndarray:
    """One frame (H, W, 3) BGR or (H, W) gray -> (S, S) uint8 gray crop (bilinear, edges replicated)."""
    gray = frame if frame.ndim == 2 else cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
    return cv2.warpAffine(
        gray, transform, (crop_size, crop_size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
    )


def _phase_shift(reference: np.ndarray, crop: np.ndarray, window: np.ndarray | None) -> float:
    (dx, dy), _ = cv2.phaseCorrelate(reference, crop.astype(np.float32), window)
    return float(np.hypot(dx, dy))


def head_motion(crops: np.ndarray, onset: int, config: AlignConfig | bool | None = None) -> np.ndarray:
    """(T,) float32: translation (px) of each crop against the onset crop, 0 at the onset.

    ECC translation by default (``AlignConfig.head_motion_method``); a frame on
    which ECC does not converge falls back to phase correlation. (A bool third
    argument is the earlier form ``hann_window`` and means the default config
    with that window setting.)
    """
    if isinstance(config, bool):
        config = AlignConfig(head_motion_window=config)
    config = config or AlignConfig()
    reference = crops[onset].astype(np.float32)
    window = cv2.createHanningWindow(reference.shape[::-1], cv2.CV_32F) if config.head_motion_window else None
    criteria = (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, config.ecc_iterations, config.ecc_epsilon)
    motion = np.zeros(len(crops), dtype=np.float32)
    for t, crop in enumerate(crops):
        if t == onset:
            continue
        if config.head_motion_method == "ecc":
            warp = np.eye(2, 3, dtype=np.float32)
            try:
                _, warp = cv2.findTransformECC(
                    reference, crop.astype(np.float32), warp, cv2.MOTION_TRANSLATION, criteria, None, config.ecc_gauss_filter
                )
                motion[t] = float(np.hypot(warp[0, 2], warp[1, 2]))
                continue
            except cv2.error:
                pass  # did not converge (e.g. the face left the frame): phase correlation below
        motion[t] = _phase_shift(reference, crop, window)
    return motion


def landmarks_on_crop(
    crop: np.ndarray, backend: LandmarkBackend, sample: str = "", config: AlignConfig | None = None
) -> np.ndarray:
    """(68, 2) float32 landmarks located on an aligned crop (S, S) uint8.

    The crop is padded by ``AlignConfig.crop_padding`` x S on each side (edges replicated)
    so the detector sees the whole face with some context; the largest face
    wins and its landmarks are refined as on full frames (``LandmarkBackend.refine``). NoFaceError naming ``sample`` if no face is found.
    """
    pad = int(round(crop.shape[0] * (config or AlignConfig()).crop_padding))
    padded = cv2.copyMakeBorder(crop, pad, pad, pad, pad, cv2.BORDER_REPLICATE)
    image = cv2.cvtColor(padded, cv2.COLOR_GRAY2BGR) if padded.ndim == 2 else padded
    subject = choose_subject(backend.detect(image), image.shape, None)
    if subject is None:
        raise NoFaceError(sample, f"no face found on the aligned {crop.shape[0]} px crop ({backend.name} backend)")
    return (backend.refine(image, subject).landmarks - pad).astype(np.float32)


def _validate(frames: np.ndarray, onset: int, sample: str) -> None:
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(f"sample {sample!r}: frames must be (T, H, W, 3) uint8 BGR, got {frames.shape} {frames.dtype}")
    if not 0 <= onset < len(frames):
        raise ValueError(f"sample {sample!r}: onset {onset} is outside the clip's {len(frames)} frames")


def align_clip(
    frames: np.ndarray,
    config: PipelineConfig,
    backend: LandmarkBackend,
    onset: int = 0,
    sample: str = "",
    positions: np.ndarray | None = None,
) -> AlignedClip:
    """Align a clip (T, H, W, 3) uint8 BGR with the onset frame's transform (module docstring).

    ``positions`` (T,) are the frames' positions in their source, used only in
    messages (clip indices otherwise). Raises NoFaceError naming the sample and
    frames if the onset has no face, or if frames lack it and
    ``config.face.missing_face`` is "fail".
    """
    frames = np.asarray(frames)
    _validate(frames, onset, sample)
    where = np.arange(len(frames)) if positions is None else np.asarray(positions)
    onset_face = detect_subject(frames[onset], backend, config.face)
    if onset_face is None:
        raise NoFaceError(
            sample, f"no face on the onset frame (position {int(where[onset])}, {backend.name} backend)", [int(where[onset])]
        )
    transform = canonical_transform(onset_face.landmarks, config.align)
    crops = np.stack([warp_to_crop(frame, transform, config.align.crop_size) for frame in frames])
    face_found = np.ones(len(frames), dtype=bool)
    for t, frame in enumerate(frames):
        if t != onset:
            face_found[t] = detect_near(frame, backend, config.face, onset_face) is not None
    missing = [int(t) for t in np.flatnonzero(~face_found)]
    if missing and config.face.missing_face == "fail":
        named = [int(where[t]) for t in missing]
        raise NoFaceError(
            sample,
            f"no face on {len(missing)} of {len(frames)} frames, positions {named} "
            f"(face.missing_face='fail'; set it to 'skip' to keep the clip without them)",
            named,
        )
    return AlignedClip(
        crops=crops,
        transform=transform,
        landmarks_onset=apply_transform(onset_face.landmarks, transform),
        head_motion=head_motion(crops, onset, config.align),
        face_found=face_found,
        missing_face=missing,
        onset_detection=onset_face,
    )
