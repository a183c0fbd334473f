"""The face figure of ``stag inspect face``: the aligned onset frame of an image or clip with its
68 landmarks and labelled ROI boxes, and a summary of the clip (frames without the face,
undecodable frames, residual head motion)."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from schemas.pipeline_config import PipelineConfig
from schemas.sample_record import FrameSource

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".ppm", ".pgm", ".tif", ".tiff", ".webp"})
FIGURE_SCALE = 3  # the 224 px crop is drawn 3x larger so labels stay legible
ROI_COLOURS = ((230, 159, 0), (86, 180, 233), (0, 158, 115), (240, 228, 66), (0, 114, 178), (213, 94, 0), (204, 121, 167))


def _load_clip(path: Path, onset: int, n_frames: int) -> tuple[np.ndarray, np.ndarray, list[int]]:
    """Frames (T, H, W, 3), their positions and undecodable positions, from an image, video or folder."""
    from stag_features.extract.frames import count_frames, read_frames, read_image

    if path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES:
        return read_image(path)[None], np.zeros(1, dtype=np.int64), []
    source = FrameSource(kind="folder" if path.is_dir() else "video", path=path)
    stop = min(count_frames(source), onset + n_frames)
    batch = read_frames(source, onset, stop, sample=str(path))
    return batch.frames, batch.positions, batch.undecodable


def draw_face_figure(crop: np.ndarray, landmarks: np.ndarray, boxes: np.ndarray, names: list[str]) -> np.ndarray:
    """BGR figure: the grey crop enlarged, landmarks as dots, ROI boxes with their names."""
    figure = cv2.cvtColor(cv2.resize(crop, None, fx=FIGURE_SCALE, fy=FIGURE_SCALE, interpolation=cv2.INTER_CUBIC), cv2.COLOR_GRAY2BGR)
    for r, (box, name) in enumerate(zip(boxes, names)):
        colour = ROI_COLOURS[r % len(ROI_COLOURS)]
        x0, y0, x1, y1 = (int(round(v * FIGURE_SCALE)) for v in box)
        cv2.rectangle(figure, (x0, y0), (x1, y1), colour, 1, cv2.LINE_AA)
        cv2.putText(figure, name, (x0 + 2, max(y0 - 3, 10)), cv2.FONT_HERSHEY_SIMPLEX, 0.38, colour, 1, cv2.LINE_AA)
    for x, y in landmarks * FIGURE_SCALE:
        cv2.circle(figure, (int(round(x)), int(round(y))), 2, (0, 0, 255), -1, cv2.LINE_AA)
    return figure


def inspect_face(path: Path, out: Path, config: PipelineConfig, onset: int = 0, n_frames: int = 30) -> dict:
    """Align the clip (or image) at ``path`` and write the onset figure to ``out``; returns a summary."""
    from stag_features.extract.align import align_clip
    from stag_features.extract.face import make_backend
    from stag_features.extract.rois import inter_ocular_distance, roi_boxes, roi_names

    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist")
    frames, positions, undecodable = _load_clip(path, onset, n_frames)
    config = config.with_overrides(face={"missing_face": "skip"})  # report missing frames instead of failing
    backend = make_backend(config.face)
    aligned = align_clip(frames, config, backend, onset=0, sample=str(path), positions=positions)
    names = roi_names(config.rois)
    boxes = roi_boxes(aligned.landmarks_onset, config.rois, config.align.crop_size)
    out.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(out), draw_face_figure(aligned.crops[0], aligned.landmarks_onset, boxes, names)):
        raise ValueError(f"could not write the figure to {out} (is the suffix an image format?)")
    return {
        "frames": len(frames),
        "undecodable": undecodable,
        "missing_face": [int(positions[t]) for t in aligned.missing_face],
        "head_motion_max": float(aligned.head_motion.max()),
        "iod": inter_ocular_distance(aligned.landmarks_onset, config.rois),
        "rois": len(names),
        "backend": backend.name,
    }
