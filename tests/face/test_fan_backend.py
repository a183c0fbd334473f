"""face-alignment backend: instructive error without weights; end to end with random weights."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from schemas.face_config import FaceConfig
from stag_features.extract.face import make_backend
from stag_features.extract.fan_backend import FAN_WEIGHTS, S3FD_WEIGHTS, torch_hub_checkpoints


def test_without_weights_the_error_names_both_files_and_the_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    folder = tmp_path / "hub" / "checkpoints"
    assert torch_hub_checkpoints() == folder
    with pytest.raises(FileNotFoundError) as caught:
        make_backend(FaceConfig(backend="fan"))
    message = str(caught.value)
    assert FAN_WEIGHTS in message and S3FD_WEIGHTS in message and str(folder) in message
    assert not folder.exists() or not any(folder.iterdir())  # nothing was downloaded


def test_torch_home_defaults_as_torch_hub_does(monkeypatch, tmp_path):
    monkeypatch.delenv("TORCH_HOME", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert torch_hub_checkpoints() == tmp_path / "torch" / "hub" / "checkpoints"


def _save_random_weights(folder: Path) -> None:
    """Randomly initialised FAN-4 and S3FD saved as face-alignment loads them (state dicts), float16 to halve size."""
    import torch
    from face_alignment.detection.sfd.net_s3fd import s3fd
    from face_alignment.models import FAN

    folder.mkdir(parents=True)
    torch.manual_seed(0)
    torch.save({k: v.half() for k, v in FAN(4).state_dict().items()}, folder / FAN_WEIGHTS)
    torch.save({k: v.half() for k, v in s3fd().state_dict().items()}, folder / S3FD_WEIGHTS)


@pytest.mark.slow
def test_with_random_weights_the_backend_returns_68_points_per_face(tmp_path, monkeypatch, synthetic_clip):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    _save_random_weights(tmp_path / "hub" / "checkpoints")
    # untrained S3FD scores hover around 0.5: threshold 0 keeps its boxes; one face keeps the test short
    config = FaceConfig(backend="fan", fan_detector_threshold=0.0, fan_max_faces=2)
    backend = make_backend(config)
    assert backend.name == "fan"
    image = synthetic_clip.frames[0]
    detections = backend.detect(image)
    assert 1 <= len(detections) <= 2
    for detection in detections:
        assert detection.landmarks.shape == (68, 2) and detection.landmarks.dtype == np.float32
        assert np.all(np.isfinite(detection.landmarks))
        x0, y0, x1, y1 = detection.box
        # FAN places points inside the crop around the detected box (random weights: anywhere in it)
        side = max(x1 - x0, y1 - y0)
        assert np.all(detection.landmarks[:, 0] > x0 - side) and np.all(detection.landmarks[:, 0] < x1 + side)
    assert len(list((tmp_path / "hub" / "checkpoints").iterdir())) == 2  # nothing else fetched
