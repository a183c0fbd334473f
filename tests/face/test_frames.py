"""Frames from numbered-image folders and videos: ranges, positions, undecodable frames."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from schemas.sample_record import FrameSource
from stag_features.errors import SampleError
from stag_features.extract.frames import count_frames, read_frames


@pytest.fixture()
def frame_folder(tmp_path: Path) -> Path:
    """Six 16x20 frames img1..img6 (intensity = 10 x number), img4 corrupt, plus a file without a number."""
    for number in range(1, 7):
        image = np.full((16, 20, 3), 10 * number, dtype=np.uint8)
        cv2.imwrite(str(tmp_path / f"img{number}.png"), image)
    (tmp_path / "img4.png").write_bytes(b"not a png")
    (tmp_path / "thumbs.png").write_bytes(b"ignored: no frame number")
    return tmp_path


def test_folder_range_positions_and_undecodable(frame_folder):
    source = FrameSource(kind="folder", path=frame_folder)
    assert count_frames(source) == 6
    batch = read_frames(source, 1, 5)
    assert batch.frames.shape == (3, 16, 20, 3) and batch.frames.dtype == np.uint8
    np.testing.assert_array_equal(batch.positions, [1, 2, 4])
    assert batch.undecodable == [3]
    np.testing.assert_array_equal(batch.frames[:, 0, 0, 0], [20, 30, 50])


def test_out_of_range_and_missing_sources_name_the_file(frame_folder, tmp_path):
    with pytest.raises(SampleError, match="outside frame folder"):
        read_frames(FrameSource(kind="folder", path=frame_folder), 4, 9, sample="s1")
    with pytest.raises(SampleError, match="missing.mp4 does not exist"):
        read_frames(FrameSource(kind="video", path=tmp_path / "missing.mp4"))
    broken = tmp_path / "broken.avi"
    broken.write_bytes(b"\x00" * 100)
    with pytest.raises(SampleError, match="broken.avi"):
        read_frames(FrameSource(kind="video", path=broken))


def test_video_range_matches_sequential_decoding(shared_data):
    source = FrameSource(kind="video", path=shared_data / "videos" / "single_face.mp4")
    assert count_frames(source) == 72
    whole = read_frames(source, 0, 50)
    middle = read_frames(source, 40, 45)
    np.testing.assert_array_equal(middle.positions, np.arange(40, 45))
    assert middle.frames.shape == (5, 360, 640, 3)
    np.testing.assert_array_equal(middle.frames, whole.frames[40:45])
    assert whole.undecodable == []


def test_partly_undecodable_video_reports_indices(shared_data):
    source = FrameSource(kind="video", path=shared_data / "videos" / "no_face.mp4")
    batch = read_frames(source, 90)
    assert count_frames(source) == 98
    np.testing.assert_array_equal(batch.positions, np.arange(90, 95))
    assert batch.undecodable == [95, 96, 97]  # the container lists 98 frames; 95 decode


def test_range_of_a_variable_frame_rate_mov_is_frame_exact(shared_data):
    # OpenCV's seek lands 4-8 frames off in this file; positions must still be decoding order
    source = FrameSource(kind="video", path=shared_data / "videos" / "face_noface.mov")
    whole = read_frames(source, 60, 72)
    part = read_frames(source, 66, 69)
    np.testing.assert_array_equal(part.frames, whole.frames[6:9])


def test_a_jpeg_cut_short_is_undecodable_not_half_a_frame(tmp_path):
    """OpenCV decodes the top of a truncated JPEG and greys the rest: the missing end-of-image marker
    says it was cut short, and the frame is reported with its reason."""
    rng = np.random.default_rng(0)
    for number in range(1, 4):
        cv2.imwrite(str(tmp_path / f"{number:03d}.jpg"), rng.integers(0, 255, (96, 96, 3), dtype=np.uint8))
    whole = (tmp_path / "002.jpg").read_bytes()
    (tmp_path / "002.jpg").write_bytes(whole[: len(whole) // 2])
    assert cv2.imread(str(tmp_path / "002.jpg")) is not None  # OpenCV alone would take it
    batch = read_frames(FrameSource(kind="folder", path=tmp_path), 0, 3)
    assert batch.undecodable == [1] and "002.jpg: JPEG cut short" in batch.reasons[1]
    np.testing.assert_array_equal(batch.positions, [0, 2])
