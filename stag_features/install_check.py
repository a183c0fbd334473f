"""Check the environment the Makefile built: exactly one OpenCV distribution
(contrib, headless, so TV-L1 is in cv2.optflow), dlib with its embedded 68-point
model, and the CPU torch. Run as ``python -m stag_features.install_check``."""
from __future__ import annotations

import sys
from importlib import metadata

OPENCV_DISTRIBUTIONS = (
    "opencv-python",
    "opencv-python-headless",
    "opencv-contrib-python",
    "opencv-contrib-python-headless",
)
EXPECTED_OPENCV = "opencv-contrib-python-headless"


def installed_opencv_distributions() -> list[str]:
    """Names of every installed OpenCV wheel (there must be exactly one)."""
    names = {(dist.metadata["Name"] or "").lower() for dist in metadata.distributions()}
    return sorted(name for name in names if name in OPENCV_DISTRIBUTIONS)


def problems() -> list[str]:
    found: list[str] = []
    wheels = installed_opencv_distributions()
    if wheels != [EXPECTED_OPENCV]:
        found.append(
            f"expected exactly one OpenCV wheel ({EXPECTED_OPENCV}), found {wheels or 'none'}; "
            f"uninstall the others and reinstall {EXPECTED_OPENCV}"
        )
    try:
        import cv2

        if not hasattr(cv2, "optflow"):
            found.append("cv2 has no optflow module: TV-L1 needs the contrib build")
    except ImportError as exc:  # pragma: no cover - reported to the user
        found.append(f"cannot import cv2: {exc}")
    try:
        import dlib  # noqa: F401
        import face_recognition_models

        face_recognition_models.pose_predictor_model_location()
    except ImportError as exc:
        found.append(f"dlib or its 68-point model is missing: {exc}")
    return found


def main() -> int:
    issues = problems()
    for line in issues:
        print(f"install check: {line}", file=sys.stderr)
    if not issues:
        print("install check: ok (one OpenCV wheel with optflow, dlib with its 68-point model)")
    return 1 if issues else 0


if __name__ == "__main__":
    sys.exit(main())
