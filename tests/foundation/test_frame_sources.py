"""Frame-source discovery and onset/apex/offset positions, on tiny folders and real files."""
from __future__ import annotations

from pathlib import Path

import pytest

from schemas.sample_record import FrameSource, SampleRecord
from stag_features.errors import SampleError
from stag_features.extract.frame_sources import (
    find_source,
    frame_count,
    frame_number,
    numbered_images,
    resolve_positions,
)


def _touch_frames(folder: Path, names: list[str]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        (folder / name).write_bytes(b"")
    return folder


@pytest.mark.parametrize(
    "name, number",
    [("img46.jpg", 46), ("image17581039.jpg", 17581039), ("046.jpg", 46), ("reg_img12.jpg", 12),
     ("006_05562.jpg", 5562), ("frame.png", None)],
)
def test_frame_number_is_the_last_digit_group(name: str, number: int | None) -> None:
    assert frame_number(name) == number


def test_numbered_images_sorts_numerically_not_by_name(tmp_path: Path) -> None:
    folder = _touch_frames(tmp_path / "clip", ["img10.jpg", "img9.jpg", "img100.jpg", "notes.txt", "cover.png"])
    assert [n for n, _ in numbered_images(folder)] == [9, 10, 100]
    assert numbered_images(folder)[0][1] == folder / "img9.jpg"


def test_numbered_images_rejects_empty_folder_and_clashing_numbers(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ValueError, match="empty.*no numbered images"):
        numbered_images(empty)
    clash = _touch_frames(tmp_path / "clash", ["img7.jpg", "img007.png"])
    with pytest.raises(ValueError, match="both give frame number 7"):
        numbered_images(clash)


def test_numbered_images_on_real_casme2_frames(shared_data: Path) -> None:
    frames = numbered_images(shared_data / "casme2_frames")
    assert [n for n, _ in frames] == list(range(1, 11))


def test_find_source_conventional_layouts(tmp_path: Path) -> None:
    casme2 = _touch_frames(tmp_path / "casme2" / "sub01" / "EP02_01f", ["img46.jpg", "img47.jpg"])
    samm = _touch_frames(tmp_path / "samm" / "006" / "006_1_2", ["006_05562.jpg"])
    smic = _touch_frames(tmp_path / "smic" / "s1" / "micro" / "negative" / "s1_ne_01", ["image563854.bmp"])
    casme3 = _touch_frames(tmp_path / "casme3" / "spNO.1" / "a" / "color", ["1.jpg"])
    video = tmp_path / "lab" / "p01" / "clip3.mp4"
    video.parent.mkdir(parents=True)
    video.write_bytes(b"")

    assert find_source(tmp_path / "casme2", "sub01", "EP02_01f") == FrameSource(kind="folder", path=casme2)
    assert find_source(tmp_path / "samm", "006", "006_1_2") == FrameSource(kind="folder", path=samm)
    assert find_source(tmp_path / "smic", "s1", "s1_ne_01") == FrameSource(kind="folder", path=smic)
    assert find_source(tmp_path / "casme3", "spNO.1", "a") == FrameSource(kind="folder", path=casme3)
    assert find_source(tmp_path / "lab", "p01", "clip3") == FrameSource(kind="video", path=video)
    assert find_source(tmp_path / "casme2", "sub01", "EP99_99") is None
    assert find_source(tmp_path / "no-such-root", "sub01", "EP02_01f") is None


def test_resolve_positions_in_a_folder_matches_frame_numbers(tmp_path: Path) -> None:
    folder = _touch_frames(tmp_path / "c", [f"img{n}.jpg" for n in range(46, 90)])
    record = SampleRecord(dataset="casme2", subject="sub01", clip="EP02_01f",
                          source=FrameSource(kind="folder", path=folder), onset=46, apex=59, offset=86)
    resolved = resolve_positions(record)
    assert (resolved.onset_index, resolved.apex_index, resolved.offset_index) == (0, 13, 40)
    assert frame_count(record.source) == 44


def test_resolve_positions_names_the_sample_when_a_frame_is_missing(tmp_path: Path) -> None:
    folder = _touch_frames(tmp_path / "c", ["img1.jpg", "img2.jpg"])
    record = SampleRecord(dataset="d", subject="s1", clip="c1",
                          source=FrameSource(kind="folder", path=folder), onset=1, apex=None, offset=5)
    with pytest.raises(SampleError, match=r"s1/c1.*offset frame 5 is not in"):
        resolve_positions(record)
    with pytest.raises(SampleError, match="no frame source"):
        resolve_positions(record.model_copy(update={"source": None}))


def test_resolve_positions_in_a_real_video(shared_data: Path) -> None:
    source = find_source(shared_data, "videos", "single_face")
    assert source is not None and source.kind == "video"
    record = SampleRecord(dataset="d", subject="videos", clip="single_face", source=source,
                          onset=0, apex=30, offset=71)
    resolved = resolve_positions(record)
    assert (resolved.onset_index, resolved.apex_index, resolved.offset_index) == (0, 30, 71)
    one_based = resolve_positions(record.model_copy(update={"onset": 1}), video_frame_base=1)
    assert one_based.onset_index == 0 and one_based.offset_index == 70
    # 30 fps video: 1000 ms is position 30
    in_ms = resolve_positions(record.model_copy(update={"onset": 0, "apex": 1000, "offset": 2000}), time_unit="ms")
    assert (in_ms.apex_index, in_ms.offset_index) == (30, 60)
    with pytest.raises(SampleError, match="outside video"):
        resolve_positions(record.model_copy(update={"offset": 72}))
