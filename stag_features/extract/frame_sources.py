"""Frame sources: where a clip's frames are, and where onset / apex / offset sit in them.

A clip's frames are either a folder of numbered images or one video file.

Numbered images
    The frame number is the *last* group of digits in the file name's stem:
    ``img46.jpg`` -> 46, ``image17581039.jpg`` -> 17581039, ``046.jpg`` -> 46,
    ``reg_img12.jpg`` -> 12, ``006_05562.jpg`` -> 5562. Images are sorted by that
    number; the position of an image is its index in that order (0-based).

Discovery (``find_source``) tries, in order, for ``root``, ``subject`` and ``clip``:
    1. ``root/subject/clip/`` holding images (CASME II ``sub01/EP02_01f``, SAMM ``006/006_1_2``);
    2. the same with a ``color`` sub-folder (CAS(ME)^3 ``spNO.1/a/color``);
    3. ``root/clip/`` holding images;
    4. a video ``root/subject/clip.<ext>`` or ``root/clip.<ext>`` or ``root/subject_clip.<ext>``;
    5. a folder named ``clip`` anywhere below ``root/subject`` at most
       ``SEARCH_DEPTH`` levels down (SMIC ``s1/micro/negative/s1_ne_01``).

Positions (``resolve_positions``)
    Folders: a sheet's frame number is matched to the image with that number.
    Videos: a sheet's frame number is the 0-based decoding position
    (``video_frame_base=0``); sheets that count from 1 pass ``video_frame_base=1``,
    and sheets that give times in milliseconds pass ``time_unit="ms"``, in which
    case position = round(ms / 1000 * fps), fps from the record or the video.
    A frame number that is not in the source is an error naming the sample.
"""
from __future__ import annotations

import os
import re
from functools import lru_cache
from pathlib import Path
from typing import Literal

from schemas.sample_record import FrameSource, SampleRecord
from stag_features.errors import SampleError

IMAGE_SUFFIXES: frozenset[str] = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff"})
VIDEO_SUFFIXES: tuple[str, ...] = (".mp4", ".avi", ".mov", ".mkv", ".m4v", ".webm", ".mpg", ".mpeg")
# CAS(ME)^3 keeps colour frames beside depth maps in a `color` sub-folder.
FRAME_SUBFOLDERS: tuple[str, ...] = ("color",)
# SMIC nests clips as subject/<micro|non_micro>/<emotion>/clip: three levels.
# One more leaves room for an extra grouping folder without walking a whole tree.
SEARCH_DEPTH = 4

_DIGITS = re.compile(r"(\d+)")
_STAGE = "frame source"


def frame_number(name: str) -> int | None:
    """The last group of digits in a file name's stem, or None if it has none."""
    groups = _DIGITS.findall(Path(name).stem)
    return int(groups[-1]) if groups else None


def _image_names(folder: Path) -> list[str]:
    try:
        names = os.listdir(folder)
    except FileNotFoundError as exc:
        raise FileNotFoundError(f"frame folder {folder} does not exist") from exc
    return [n for n in names if Path(n).suffix.lower() in IMAGE_SUFFIXES and not n.startswith(".")]


def numbered_images(folder: Path) -> list[tuple[int, Path]]:
    """(frame number, path) for every image in ``folder``, sorted by frame number.

    Raises ValueError naming the folder if it holds no numbered image, or if two
    files carry the same frame number (``img7.jpg`` and ``img007.png``).
    """
    folder = Path(folder)
    numbered: dict[int, Path] = {}
    for name in _image_names(folder):
        number = frame_number(name)
        if number is None:
            continue  # e.g. a thumbnail without a number: not a frame
        if number in numbered:
            raise ValueError(
                f"frame folder {folder}: files {numbered[number].name!r} and {name!r} "
                f"both give frame number {number}"
            )
        numbered[number] = folder / name
    if not numbered:
        raise ValueError(f"frame folder {folder} holds no numbered images ({', '.join(sorted(IMAGE_SUFFIXES))})")
    return sorted(numbered.items())


def _has_images(folder: Path) -> bool:
    try:
        return any(Path(n).suffix.lower() in IMAGE_SUFFIXES for n in os.listdir(folder))
    except (FileNotFoundError, NotADirectoryError):
        return False


def _image_folder(candidate: Path) -> Path | None:
    if _has_images(candidate):
        return candidate
    for sub in FRAME_SUBFOLDERS:
        if _has_images(candidate / sub):
            return candidate / sub
    return None


def _video_file(folder: Path, stem: str) -> Path | None:
    for suffix in VIDEO_SUFFIXES:
        for variant in (suffix, suffix.upper()):
            path = folder / f"{stem}{variant}"
            if path.is_file():
                return path
    return None


def _search_folder(base: Path, clip: str, depth: int) -> Path | None:
    """Breadth-first search for a folder named ``clip`` holding images below ``base``."""
    level = [base]
    for _ in range(depth):
        following: list[Path] = []
        for folder in level:
            try:
                entries = sorted(os.scandir(folder), key=lambda e: e.name)
            except (FileNotFoundError, NotADirectoryError, PermissionError):
                continue
            for entry in entries:
                if not entry.is_dir():
                    continue
                path = Path(entry.path)
                if entry.name == clip:
                    found = _image_folder(path)
                    if found is not None:
                        return found
                elif not _has_images(path):  # never descend into a frame folder
                    following.append(path)
        level = following
    return None


def find_source(root: Path, subject: str, clip: str) -> FrameSource | None:
    """The frames of ``subject``/``clip`` below ``root`` (see the module docstring), or None."""
    root = Path(root)
    if not root.is_dir():
        return None
    subject_dir = root / subject
    for candidate in (subject_dir / clip, root / clip):
        folder = _image_folder(candidate)
        if folder is not None:
            return FrameSource(kind="folder", path=folder)
    for folder, stem in ((subject_dir, clip), (root, clip), (root, f"{subject}_{clip}")):
        video = _video_file(folder, stem)
        if video is not None:
            return FrameSource(kind="video", path=video)
    if subject_dir.is_dir():
        folder = _search_folder(subject_dir, clip, SEARCH_DEPTH)
        if folder is not None:
            return FrameSource(kind="folder", path=folder)
    return None


@lru_cache(maxsize=64)
def _video_properties(path: Path, mtime: float) -> tuple[int, float]:
    """(frame count, fps) from the container's metadata; cached per file version."""
    import cv2  # imported here: discovery of folders must not need OpenCV

    capture = cv2.VideoCapture(str(path))
    try:
        if not capture.isOpened():
            raise ValueError(f"video {path} cannot be opened by OpenCV")
        return int(capture.get(cv2.CAP_PROP_FRAME_COUNT)), float(capture.get(cv2.CAP_PROP_FPS))
    finally:
        capture.release()


def video_properties(path: Path) -> tuple[int, float]:
    """(frame count, fps) of a video file as its container reports them."""
    path = Path(path)
    return _video_properties(path, path.stat().st_mtime)


def frame_count(source: FrameSource) -> int:
    """Number of frames in a source (images in the folder, or the video's reported count)."""
    if source.kind == "folder":
        return len(numbered_images(source.path))
    return video_properties(source.path)[0]


def _folder_positions(record: SampleRecord) -> dict[str, int | None]:
    assert record.source is not None
    position_of = {number: i for i, (number, _) in enumerate(numbered_images(record.source.path))}
    positions: dict[str, int | None] = {}
    for name in ("onset", "apex", "offset"):
        number = getattr(record, name)
        if number is None:
            positions[name] = None
        elif number not in position_of:
            first, last = min(position_of), max(position_of)
            raise SampleError(
                record.sample_id,
                _STAGE,
                f"{name} frame {number} is not in {record.source.path} (frames {first}..{last}, {len(position_of)} images)",
            )
        else:
            positions[name] = position_of[number]
    return positions


def _video_positions(
    record: SampleRecord, video_frame_base: int, time_unit: Literal["frame", "ms"]
) -> dict[str, int | None]:
    assert record.source is not None
    count, video_fps = video_properties(record.source.path)
    fps = record.fps or video_fps
    if time_unit == "ms" and not fps:
        raise SampleError(record.sample_id, _STAGE, f"times in ms need an fps; neither the record nor {record.source.path} gives one")
    positions: dict[str, int | None] = {}
    for name in ("onset", "apex", "offset"):
        value = getattr(record, name)
        if value is None:
            positions[name] = None
            continue
        position = round(value / 1000.0 * fps) if time_unit == "ms" else value - video_frame_base
        if not 0 <= position < count:
            raise SampleError(
                record.sample_id,
                _STAGE,
                f"{name} {value} ({time_unit}) is position {position}, outside video {record.source.path} of {count} frames",
            )
        positions[name] = position
    return positions


def resolve_positions(
    record: SampleRecord,
    *,
    video_frame_base: int = 0,
    time_unit: Literal["frame", "ms"] = "frame",
) -> SampleRecord:
    """A copy of ``record`` with onset_index / apex_index / offset_index set.

    ``video_frame_base`` and ``time_unit`` apply to video sources only (see the
    module docstring). Raises SampleError naming the sample if the record has no
    source or a frame number is not in it.
    """
    if record.source is None:
        raise SampleError(record.sample_id, _STAGE, "no frame source: the clip's frames were not found")
    if record.source.kind == "folder":
        positions = _folder_positions(record)
    else:
        positions = _video_positions(record, video_frame_base, time_unit)
    return record.model_copy(update={f"{name}_index": pos for name, pos in positions.items()})
