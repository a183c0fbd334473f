"""The face figure of ``stag inspect face``: the aligned onset frame of an image or clip with its
68 landmarks and numbered ROI boxes (names in a key under the face), and, for a clip, the
residual head motion over the frames checked, frames without the face marked; titled with the
file and the onset frame. Also a summary of the clip (frames without the face, undecodable
frames, residual head motion)."""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from schemas.pipeline_config import PipelineConfig  # noqa: E402
from schemas.sample_record import FrameSource  # noqa: E402
from stag_features.figures.drawing import draw_rois  # noqa: E402

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".ppm", ".pgm", ".tif", ".tiff", ".webp"})
FIGURE_SIZE = (11.0, 6.2)  # inches: the face and its ROI key, the head-motion plot
DPI = 120


def _load_clip(path: Path, onset: int, n_frames: int) -> tuple[np.ndarray, np.ndarray, list[int]]:
    """Frames (T, H, W, 3), their positions and undecodable positions, from an image, video or folder."""
    from stag_features.extract.frames import count_frames, read_frames, read_image

    if path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES:
        return read_image(path)[None], np.zeros(1, dtype=np.int64), []
    source = FrameSource(kind="folder" if path.is_dir() else "video", path=path)
    stop = min(count_frames(source), onset + n_frames)
    batch = read_frames(source, onset, stop, sample=str(path))
    return batch.frames, batch.positions, batch.undecodable


def draw_face_figure(crop: np.ndarray, landmarks: np.ndarray, boxes: np.ndarray, names: list[str], title: str,
                     positions: np.ndarray, head_motion: np.ndarray, missing: list[int]):
    """The figure (matplotlib): the grey crop with landmarks (red dots) and numbered ROI boxes, and
    the residual head motion (px at crop size) at each frame position, frames without the face
    marked; a single image gets a note instead of the plot."""
    figure, (face_ax, motion_ax) = plt.subplots(1, 2, figsize=FIGURE_SIZE, layout="constrained",
                                                gridspec_kw={"width_ratios": [1, 1.1]})
    face_ax.imshow(crop, cmap="gray", vmin=0, vmax=255)
    face_ax.scatter(landmarks[:, 0], landmarks[:, 1], s=6, c="red", zorder=3)
    draw_rois(face_ax, boxes, names)
    face_ax.set_title(f"aligned onset frame: 68 landmarks, {len(names)} ROIs", fontsize=9)
    face_ax.set_xticks([])
    face_ax.set_yticks([])
    if len(positions) > 1:
        shown = np.where(np.isin(positions, missing), np.nan, head_motion)  # not measured where no face was found
        motion_ax.plot(positions, shown, marker="o", ms=3, color="tab:blue")
        if missing:
            motion_ax.scatter(missing, np.zeros(len(missing)), marker="x", color="tab:red", zorder=3,
                              label="no face found (motion not measured)")
            motion_ax.legend(fontsize=7)
        motion_ax.set_xlabel("frame position in the clip")
        motion_ax.set_ylabel("residual head motion after alignment (px)")
        motion_ax.set_title("head motion left after alignment, relative to the onset", fontsize=9)
        motion_ax.grid(alpha=0.3)
    else:
        motion_ax.text(0.5, 0.5, "a single image: no head motion to plot", ha="center", va="center")
        motion_ax.axis("off")
    figure.suptitle(title)
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
    missing = [int(positions[t]) for t in aligned.missing_face]
    title = f"{path.name}: onset frame at position {int(positions[0])} (landmarks: {backend.name})"
    figure = draw_face_figure(aligned.crops[0], aligned.landmarks_onset, boxes, names, title, positions,
                              np.asarray(aligned.head_motion, np.float64), missing)
    out.parent.mkdir(parents=True, exist_ok=True)
    try:
        figure.savefig(out, dpi=DPI, bbox_inches="tight")  # the ROI key under the face included
    except ValueError as exc:  # an unknown suffix
        raise ValueError(f"could not write the figure to {out}: {exc}") from None
    finally:
        plt.close(figure)
    return {
        "frames": len(frames),
        "undecodable": undecodable,
        "missing_face": missing,
        "head_motion_max": float(np.nanmax(np.where(np.isin(positions, missing), np.nan, aligned.head_motion))),
        "iod": inter_ocular_distance(aligned.landmarks_onset, config.rois),
        "rois": len(names),
        "backend": backend.name,
    }
