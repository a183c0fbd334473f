"""``stag inspect``: figures for people.

    stag inspect face IMAGE_OR_CLIP [--out PNG] [--onset N] [--frames N] [--config YAML]
        the aligned onset frame with its 68 landmarks and labelled ROI boxes;
        a clip (video file or folder of numbered frames) is also checked for
        the face on ``--frames`` frames from the onset, with residual head motion.
    stag inspect sample STORE ID [--out PNG]
        one stored sample (drawn by stag_features.figures.sample_figure.render_sample).
"""
from __future__ import annotations

import argparse
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


def _face_command(args: argparse.Namespace) -> int:
    path = Path(args.path)
    config = PipelineConfig.from_yaml(args.config) if args.config else PipelineConfig()
    out = Path(args.out) if args.out else Path(f"{path.stem}_face.png")
    summary = inspect_face(path, out, config, onset=args.onset, n_frames=args.frames)
    print(
        f"{path}: {summary['frames']} frame(s) from position {args.onset}, backend {summary['backend']}; "
        f"inter-ocular distance {summary['iod']:.1f} px at crop {config.align.crop_size}; {summary['rois']} ROIs"
    )
    if summary["frames"] > 1:
        print(
            f"  frames without the face: {summary['missing_face'] or 'none'}; undecodable: {summary['undecodable'] or 'none'}; "
            f"largest residual head motion {summary['head_motion_max']:.2f} px"
        )
    print(f"wrote {out}")
    return 0


def _sample_command(args: argparse.Namespace) -> int:
    from stag_features.figures.sample_figure import render_sample  # the store's reader, loaded only when asked for

    out = Path(args.out) if args.out else Path(f"{args.sample_id.replace('/', '_')}.png")
    render_sample(Path(args.store), args.sample_id, out)
    print(f"wrote {out}")
    return 0


def register(subparsers) -> None:
    """Add ``inspect face`` and ``inspect sample`` to the ``stag`` command."""
    parser = subparsers.add_parser("inspect", help="figures: the aligned face with ROIs, or a stored sample")
    commands = parser.add_subparsers(dest="inspect_command", required=True)
    face = commands.add_parser("face", help="aligned onset frame with 68 landmarks and labelled ROI boxes")
    face.add_argument("path", metavar="IMAGE_OR_CLIP", help="an image, a video file, or a folder of numbered frames")
    face.add_argument("--out", help="PNG to write (default: <name>_face.png here)")
    face.add_argument("--onset", type=int, default=0, help="position of the onset frame in a clip (default 0)")
    face.add_argument("--frames", type=int, default=30, help="frames of a clip checked from the onset (default 30)")
    face.add_argument("--config", help="pipeline config YAML (default: built-in defaults)")
    face.set_defaults(handler=_face_command)
    sample = commands.add_parser("sample", help="figure of one stored sample")
    sample.add_argument("store", metavar="STORE", help="path of a stag Zarr store")
    sample.add_argument("sample_id", metavar="ID", help="sample id, e.g. casme2/sub01/EP02_01f")
    sample.add_argument("--out", help="PNG to write (default: <ID>.png here)")
    sample.set_defaults(handler=_sample_command)
