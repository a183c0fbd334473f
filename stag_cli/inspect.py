"""``stag inspect``: figures for people.

    stag inspect face IMAGE_OR_CLIP [--out PNG] [--onset N] [--frames N] [--config YAML]
        the aligned onset frame with its 68 landmarks and numbered ROI boxes (names in a key),
        titled with the file and the onset frame; a clip (video file or folder of numbered
        frames) is also checked for the face on ``--frames`` frames from the onset, and its
        residual head motion is plotted beside the face.
    stag inspect sample STORE ID [--out PNG]
        one stored sample (drawn by stag_features.figures.sample_figure.render_sample); ID is
        <subject>/<clip>, e.g. s01/s01_happiness_1 in the demo store.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from schemas.pipeline_config import PipelineConfig


def _face_command(args: argparse.Namespace) -> int:
    from stag_features.figures.face_figure import inspect_face  # OpenCV and dlib, loaded only when asked for

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
    face = commands.add_parser("face", help="aligned onset frame with 68 landmarks, numbered ROI boxes and, for a "
                                            "clip, the residual head motion")
    face.add_argument("path", metavar="IMAGE_OR_CLIP", help="an image, a video file, or a folder of numbered frames")
    face.add_argument("--out", help="PNG to write (default: <name>_face.png here)")
    face.add_argument("--onset", type=int, default=0, help="position of the onset frame in a clip (default 0)")
    face.add_argument("--frames", type=int, default=30, help="frames of a clip checked from the onset (default 30)")
    face.add_argument("--config", help="pipeline config YAML (default: built-in defaults)")
    face.set_defaults(handler=_face_command)
    sample = commands.add_parser("sample", help="figure of one stored sample")
    sample.add_argument("store", metavar="STORE", help="path of a stag Zarr store")
    sample.add_argument("sample_id", metavar="ID",
                        help="sample id <subject>/<clip> as the store names it (stag store info; e.g. s01/s01_happiness_1 "
                             "in the demo, sub01/EP02_01f in the MEGC 2019 composite)")
    sample.add_argument("--out", help="PNG to write (default: <ID>.png here)")
    sample.set_defaults(handler=_sample_command)
