"""Frames of a clip as uint8 BGR arrays, read only over the range asked for.

Sources (``schemas.sample_record.FrameSource``):
    folder  numbered images (order and numbering from
            ``stag_features.extract.frame_sources.numbered_images``); position i is the
            i-th image in frame-number order.
    video   mp4 / avi / mov (anything OpenCV's FFmpeg backend opens); position i
            is the i-th decoded frame.

Only ``[start, stop)`` is kept: frames of a video before ``start`` are grabbed
and dropped (OpenCV's seek is not frame-accurate, see ``_skip_to``), so memory
holds only the range and a long video is never loaded whole.

Undecodable frames are reported by position in ``FrameBatch.undecodable`` (with
a reason each in ``FrameBatch.reasons``) and left out of ``frames``; ``positions``
says which source positions the returned frames are. A JPEG cut short (no
end-of-image marker) is undecodable too: OpenCV would return its top half and a
grey rest. Whether a clip may lose frames is the caller's decision
(``schemas.face_config.FaceConfig.undecodable_frames``). An unreadable image, or
a video whose frames in the range all fail, is a SampleError naming the file.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from schemas.sample_record import FrameSource
from stag_features.errors import SampleError
from stag_features.extract.frame_sources import numbered_images

_STAGE = "decode"
VIDEO_SUFFIXES: frozenset[str] = frozenset({".mp4", ".avi", ".mov", ".mkv", ".m4v", ".webm", ".mpg", ".mpeg"})


@dataclass
class FrameBatch:
    """Decoded frames of one range of a source.

    frames       (T, H, W, 3) uint8, BGR
    positions    (T,) int64, 0-based positions in the source of those frames
    undecodable  positions in the asked range that could not be decoded
    """

    frames: np.ndarray
    positions: np.ndarray
    undecodable: list[int] = field(default_factory=list)
    reasons: dict[int, str] = field(default_factory=dict)  # position -> why it could not be decoded

    def __post_init__(self) -> None:
        if self.frames.ndim != 4 or self.frames.shape[-1] != 3 or self.frames.dtype != np.uint8:
            raise ValueError(f"FrameBatch.frames must be (T, H, W, 3) uint8, got {self.frames.shape} {self.frames.dtype}")
        if len(self.positions) != len(self.frames):
            raise ValueError(f"FrameBatch: {len(self.frames)} frames but {len(self.positions)} positions")


def _as_bgr(image: np.ndarray) -> np.ndarray:
    if image.ndim == 2:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    if image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2BGR)
    return image


def _check_range(total: int, start: int, stop: int | None, what: str, sample: str) -> int:
    stop = total if stop is None else stop
    if not 0 <= start < stop <= total:
        raise SampleError(sample or what, _STAGE, f"frame range [{start}, {stop}) is outside {what} ({total} frames)")
    return stop


def _stack(frames: list[np.ndarray], source: Path, positions: list[int], sample: str) -> np.ndarray:
    shapes = {f.shape for f in frames}
    if len(shapes) > 1:
        raise SampleError(sample or str(source), _STAGE, f"{source}: frames differ in size {sorted(shapes)} (positions {positions[:5]}...)")
    return np.stack(frames)


JPEG_SUFFIXES = frozenset({".jpg", ".jpeg"})
JPEG_END = b"\xff\xd9"  # the end-of-image marker
JPEG_TAIL = 1024  # bytes searched for it (encoders may pad after it)


def truncated_jpeg(path: Path) -> bool:
    """True for a JPEG file whose end-of-image marker is missing (the file was cut short)."""
    if path.suffix.lower() not in JPEG_SUFFIXES:
        return False
    with path.open("rb") as handle:
        handle.seek(0, 2)
        size = handle.tell()
        handle.seek(max(0, size - JPEG_TAIL))
        return JPEG_END not in handle.read()


def _read_image_frame(path: Path) -> tuple[np.ndarray | None, str]:
    """(image, '') or (None, why it cannot be decoded)."""
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        return None, f"{path.name}: not a decodable image"
    if truncated_jpeg(path):
        return None, f"{path.name}: JPEG cut short (no end-of-image marker)"
    return _as_bgr(image), ""


def _read_folder(folder: Path, start: int, stop: int | None, sample: str) -> FrameBatch:
    try:
        images = numbered_images(folder)
    except (ValueError, FileNotFoundError) as exc:
        raise SampleError(sample or str(folder), _STAGE, str(exc)) from exc
    stop = _check_range(len(images), start, stop, f"frame folder {folder}", sample)
    frames: list[np.ndarray] = []
    positions: list[int] = []
    undecodable: list[int] = []
    reasons: dict[int, str] = {}
    for position in range(start, stop):
        image, reason = _read_image_frame(images[position][1])
        if image is None:
            undecodable.append(position)
            reasons[position] = reason
            continue
        frames.append(image)
        positions.append(position)
    if not frames:
        raise SampleError(sample or str(folder), _STAGE, f"no image in {folder} positions [{start}, {stop}) could be decoded")
    return FrameBatch(_stack(frames, folder, positions, sample), np.asarray(positions, dtype=np.int64), undecodable,
                      reasons)


def _open_video(path: Path, sample: str) -> cv2.VideoCapture:
    if not path.is_file():
        raise SampleError(sample or str(path), _STAGE, f"video {path} does not exist")
    capture = cv2.VideoCapture(str(path))
    if not capture.isOpened():
        raise SampleError(sample or str(path), _STAGE, f"video {path} cannot be opened by OpenCV (codec or container unsupported?)")
    return capture


def _skip_to(capture: cv2.VideoCapture, start: int) -> None:
    """Advance ``capture`` so that the next grab decodes position ``start``.

    Frames before ``start`` are grabbed (demuxed and decoded, never converted
    or kept). OpenCV's seek (CAP_PROP_POS_FRAMES) is not frame-accurate: on
    ../shared/data/videos/face_noface.mov (variable frame rate) it landed 4 to
    8 frames away from the position asked for, and reported the asked one.
    """
    for _ in range(start):
        if not capture.grab():
            break


def _read_video(path: Path, start: int, stop: int | None, sample: str) -> FrameBatch:
    total = count_frames(FrameSource(kind="video", path=path))
    stop = _check_range(total, start, stop, f"video {path}", sample)
    capture = _open_video(path, sample)
    _skip_to(capture, start)
    frames: list[np.ndarray] = []
    positions: list[int] = []
    undecodable: list[int] = []
    try:
        for position in range(start, stop):
            ok = capture.grab()
            image = capture.retrieve()[1] if ok else None
            if image is None:
                undecodable.append(position)
                continue
            frames.append(_as_bgr(image))
            positions.append(position)
    finally:
        capture.release()
    if not frames:
        raise SampleError(sample or str(path), _STAGE, f"no frame of video {path} in positions [{start}, {stop}) could be decoded")
    reasons = {p: f"{path.name}: frame {p} does not decode" for p in undecodable}
    return FrameBatch(_stack(frames, path, positions, sample), np.asarray(positions, dtype=np.int64), undecodable,
                      reasons)


def read_frames(source: FrameSource, start: int = 0, stop: int | None = None, sample: str = "") -> FrameBatch:
    """Decode positions ``[start, stop)`` of ``source`` (stop None = to the end).

    Raises SampleError naming ``sample`` (or the file) for a missing or
    unreadable source, an empty or out-of-range request, or frames of
    different sizes.
    """
    path = Path(source.path)
    if source.kind == "folder":
        return _read_folder(path, start, stop, sample)
    if path.suffix.lower() not in VIDEO_SUFFIXES:
        raise SampleError(sample or str(path), _STAGE, f"{path}: not a video file ({', '.join(sorted(VIDEO_SUFFIXES))})")
    return _read_video(path, start, stop, sample)


def count_frames(source: FrameSource) -> int:
    """Frames in a source: images in the folder, or the count the video's container reports."""
    path = Path(source.path)
    if source.kind == "folder":
        return len(numbered_images(path))
    capture = _open_video(path, str(path))
    try:
        return int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
    finally:
        capture.release()


def read_image(path: Path) -> np.ndarray:
    """One still image as uint8 BGR; ValueError naming the file if it cannot be decoded."""
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise ValueError(f"{path}: not a readable image (missing, or a format OpenCV cannot decode)")
    return _as_bgr(image)
