"""``stag inspect face`` writes the aligned onset figure; ``inspect sample`` delegates."""
from __future__ import annotations

import argparse
import sys
import types

import cv2
import pytest

from stag_cli import inspect as inspect_cli
from stag_features.figures import face_figure


def run(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="stag")
    inspect_cli.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.handler(args)


def test_inspect_face_on_an_image_writes_the_figure(shared_data, tmp_path, capsys):
    out = tmp_path / "takeo.png"
    assert run(["inspect", "face", str(shared_data / "landmarks" / "takeo.ppm"), "--out", str(out)]) == 0
    figure = cv2.imread(str(out))
    height, width = figure.shape[:2]
    assert width > height and figure.std() > 10  # the face and its note beside it, not blank
    assert width >= face_figure.FIGURE_SIZE[0] * face_figure.DPI * 0.8  # drawn large enough to read
    # landmarks are drawn in pure red and boxes in colour on a grey crop
    red = (figure[..., 2] > 200) & (figure[..., 1] < 60) & (figure[..., 0] < 60)
    assert red.sum() > 68 * 4
    assert "15 ROIs" in capsys.readouterr().out


@pytest.mark.slow
def test_inspect_face_on_a_clip_reports_missing_frames(shared_data, tmp_path, capsys):
    out = tmp_path / "clip.png"
    video = shared_data / "videos" / "face_noface.mov"
    assert run(["inspect", "face", str(video), "--onset", "68", "--frames", "8", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "frames without the face: [72, 73, 74, 75]" in printed
    assert out.is_file()


def test_inspect_face_without_a_face_fails_clearly(shared_data, tmp_path):
    from stag_features.errors import NoFaceError

    with pytest.raises(NoFaceError, match="no_face.mp4"):
        run(["inspect", "face", str(shared_data / "videos" / "no_face.mp4"), "--frames", "2", "--out", str(tmp_path / "x.png")])


def test_inspect_sample_calls_the_store_figure(monkeypatch, tmp_path):
    calls = []
    module = types.ModuleType("stag_features.figures.sample_figure")
    module.render_sample = lambda store, sample_id, out: calls.append((store, sample_id, out))
    monkeypatch.setitem(sys.modules, "stag_features.figures.sample_figure", module)
    assert run(["inspect", "sample", str(tmp_path / "a.zarr"), "sub01/EP02_01f", "--out", str(tmp_path / "f.png")]) == 0
    assert calls == [(tmp_path / "a.zarr", "sub01/EP02_01f", tmp_path / "f.png")]
