"""face-alignment (FAN) landmark backend: S3FD detector + 2D-FAN-4 (Bulat &
Tzimiropoulos, ICCV 2017), 68 iBUG points.

face-alignment downloads its weights on first use; stag never lets it. The two
files must already be in the torch hub cache, where face-alignment would have
put them:

    $TORCH_HOME/hub/checkpoints/2DFAN4-11f355bf06.pth.tar   (landmarks)
    $TORCH_HOME/hub/checkpoints/s3fd-619a316812.pth          (detector)

(``TORCH_HOME`` defaults as torch.hub does: ``$XDG_CACHE_HOME/torch``, else
``~/.cache/torch``.) Without them the backend raises FileNotFoundError naming
both files and the folder. face-alignment is installed without its
dependencies (``pip install --no-deps face-alignment==1.5.0`` plus numba) so
that it cannot pull a second OpenCV wheel.
"""
from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np

from schemas.face_config import FaceConfig
from stag_features.extract.face import FaceDetection, LandmarkBackend, shrink_for_detection

FAN_WEIGHTS = "2DFAN4-11f355bf06.pth.tar"
S3FD_WEIGHTS = "s3fd-619a316812.pth"
FAN_WEIGHT_FILES: tuple[str, str] = (FAN_WEIGHTS, S3FD_WEIGHTS)


def torch_hub_checkpoints() -> Path:
    """The folder torch.hub (and face-alignment) keeps downloaded weights in."""
    torch_home = os.environ.get("TORCH_HOME")
    if torch_home is None:
        cache = os.environ.get("XDG_CACHE_HOME", os.path.join(os.path.expanduser("~"), ".cache"))
        torch_home = os.path.join(cache, "torch")
    return Path(os.path.expanduser(torch_home)) / "hub" / "checkpoints"


def require_fan_weights() -> tuple[Path, Path]:
    """Paths of the FAN and S3FD weights; FileNotFoundError with the instruction if either is absent."""
    folder = torch_hub_checkpoints()
    paths = (folder / FAN_WEIGHTS, folder / S3FD_WEIGHTS)
    missing = [p.name for p in paths if not p.is_file()]
    if missing:
        raise FileNotFoundError(
            f"face backend 'fan' needs the face-alignment weights {FAN_WEIGHTS} and {S3FD_WEIGHTS} in {folder} "
            f"(missing: {', '.join(missing)}). stag never downloads weights: copy both files there (they are "
            f"face-alignment's own downloads, from www.adrianbulat.com/downloads/python-fan/), or set TORCH_HOME "
            f"to a folder whose hub/checkpoints holds them, or use face.backend: dlib."
        )
    return paths


class FanBackend(LandmarkBackend):
    """face-alignment's S3FD + 2D-FAN-4, weights only from the torch hub cache."""

    name = "fan"

    def __init__(self, config: FaceConfig):
        fan_path, s3fd_path = require_fan_weights()
        try:
            import face_alignment
        except ImportError as exc:  # numba missing, typically
            raise ImportError(
                f"face backend 'fan' needs face-alignment==1.5.0 and numba importable ({exc}); install with "
                f"pip install --no-deps face-alignment==1.5.0 numba"
            ) from exc
        self.config = config
        self._model = face_alignment.FaceAlignment(
            face_alignment.LandmarksType.TWO_D,
            device=config.fan_device,
            flip_input=config.fan_flip_input,
            face_detector="sfd",
            face_detector_kwargs={"path_to_detector": str(s3fd_path), "filter_threshold": config.fan_detector_threshold},
            compile=False,  # torch.compile would write a cache under ~/.cache and take minutes on CPU
        )
        self.weights = (fan_path, s3fd_path)  # FaceAlignment read the FAN file from the same torch hub folder

    def detect(self, image_bgr: np.ndarray, upsample: int | None = None) -> list[FaceDetection]:
        """S3FD boxes (most confident first, at most ``fan_max_faces``) with FAN landmarks; S3FD has no
        upsampling, so ``upsample`` is ignored."""
        rgb = cv2.cvtColor(image_bgr, cv2.COLOR_BGR2RGB) if image_bgr.ndim == 3 else cv2.cvtColor(image_bgr, cv2.COLOR_GRAY2RGB)
        small, factor = shrink_for_detection(rgb, self.config.detect_max_side)
        boxes = self._model.face_detector.detect_from_image(small.copy())
        if len(boxes) == 0:
            return []
        boxes = sorted((np.asarray(b, dtype=np.float64) for b in boxes), key=lambda b: -b[4])[: self.config.fan_max_faces]
        full = [np.concatenate([b[:4] / factor, b[4:5]]) for b in boxes]
        landmarks = self._model.get_landmarks_from_image(rgb, detected_faces=full)
        return [
            FaceDetection(box=tuple(float(v) for v in b[:4]), landmarks=np.asarray(lm[:, :2], dtype=np.float32), score=float(b[4]))
            for b, lm in zip(full, landmarks or [])
        ]
