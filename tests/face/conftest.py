"""Fixtures of the face tests: one small synthetic clip and a dlib backend, built once."""
from __future__ import annotations

import pytest

from schemas.face_config import FaceConfig
from schemas.synthetic_config import SyntheticConfig


@pytest.fixture(scope="session")
def dlib_backend():
    from stag_features.extract.face import make_backend

    return make_backend(FaceConfig())


@pytest.fixture(scope="session")
def small_synthetic_config() -> SyntheticConfig:
    return SyntheticConfig(n_frames=14, rise_frames=(4, 5), fall_frames=(4, 5))


@pytest.fixture(scope="session")
def synthetic_dataset(small_synthetic_config):
    from stag_features.adapters.synthetic_clips import make_dataset

    return make_dataset(2, 1, seed=7, config=small_synthetic_config, emotions=("happiness", "surprise", "disgust"))


@pytest.fixture(scope="session")
def synthetic_clip(synthetic_dataset):
    return synthetic_dataset[0]
