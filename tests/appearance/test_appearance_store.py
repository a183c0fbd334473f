"""Appearance at ingest (issue 25): the pipeline computes the images when ``appearance.enabled``, its
parameters enter the config hash, the store's layout lists the arrays, and they round-trip."""
from __future__ import annotations

import numpy as np
import pytest

from schemas.pipeline_config import PipelineConfig
from schemas.store_spec import APPEARANCE_ARRAYS, DIFFERENCE_IMAGE, StoreLayout
from stag_features.store.identity import StoreIdentity, adopted

LAYOUT = StoreLayout(frames=2, height=16, width=16, time=20, patch=4, roi_names=("a", "b"), au_names=("AU1",),
                     edges=((0, 1),), class_schemes={"demo": ("happy", "sad")})
ENABLED = {"enabled": True, "size": 12}


def _identity(config: PipelineConfig, producer: str = "pipeline") -> StoreIdentity:
    """LAYOUT with the appearance fields ``config`` adds, as ``producers.pipeline_layout`` adds them."""
    layout = StoreLayout(**{**LAYOUT.model_dump(), **config.appearance_layout()})
    return StoreIdentity(dataset="d", producer=producer, config=config.provenance(), config_hash=config.config_hash(),
                         layout=layout, store_config=config.store, flow_units="px")


def test_the_pipeline_layout_holds_the_appearance_arrays_its_config_enables():
    from stag_features.ingest.producers import pipeline_layout

    on = pipeline_layout(PipelineConfig().with_overrides(appearance=ENABLED), {"demo": ("happy", "sad")})
    off = pipeline_layout(PipelineConfig(), {"demo": ("happy", "sad")})
    assert on.extra_arrays == APPEARANCE_ARRAYS and on.appearance_size == 12 and off.extra_arrays == ()


def test_a_config_that_enables_appearance_gives_a_layout_that_holds_it():
    on = _identity(PipelineConfig().with_overrides(appearance=ENABLED)).layout
    assert on.extra_arrays == APPEARANCE_ARRAYS and (on.appearance_size, on.appearance_channels) == (12, 1)
    assert on.shape(next(s for s in on.sample_arrays() if s.name == DIFFERENCE_IMAGE)) == (1, 12, 12)
    assert set(APPEARANCE_ARRAYS) <= set(on.digested_arrays())
    assert _identity(PipelineConfig()).layout == LAYOUT  # off: the layout is the producer's, unchanged


def test_appearance_parameters_enter_the_hash_and_older_stores_are_the_same_computation():
    base = PipelineConfig()
    hashes = {base.config_hash(), base.with_overrides(appearance={"enabled": True}).config_hash(),
              base.with_overrides(appearance={"enabled": True, "size": 32}).config_hash(),
              base.with_overrides(appearance={"enabled": True, "mesti_profile": "gaussian"}).config_hash()}
    assert len(hashes) == 4
    # a store recorded before the section existed computed what appearance off computes: it is adopted
    recorded = {k: v for k, v in base.provenance().items() if k != "appearance"}
    identity = _identity(base)
    kept = adopted(identity, {"pipeline_config": recorded, "config_hash": "0" * 64})
    assert kept.config_hash == "0" * 64
    on = _identity(base.with_overrides(appearance={"enabled": True}))
    assert adopted(on, {"pipeline_config": recorded, "config_hash": "0" * 64}).config_hash == on.config_hash


def test_layout_refuses_appearance_arrays_without_their_sizes():
    with pytest.raises(ValueError, match="need appearance_size >= 1 and appearance_channels >= 1"):
        StoreLayout(**{**LAYOUT.model_dump(), "extra_arrays": (DIFFERENCE_IMAGE,)})


def test_appearance_arrays_round_trip_through_a_store(tmp_path):
    from stag_features.store import open_stores
    from stag_features.store.slots import write_sample
    from stag_features.store.writer import allocate_slots, ensure_store
    from tests.store.conftest import random_features

    identity = _identity(PipelineConfig().with_overrides(appearance=ENABLED))
    layout = identity.layout
    path = tmp_path / "a.zarr"
    ensure_store(path, identity)
    slot = allocate_slots(path, ["s1/c1"])["s1/c1"]
    features = random_features("s1/c1", 3, layout=layout)
    rng = np.random.default_rng(1)
    images = {name: rng.normal(size=(1, 12, 12)).astype(np.float32) for name in APPEARANCE_ARRAYS}
    features.extras.update(images)
    write_sample(path, slot, features, input_hash="h")
    reader = open_stores([path])[0]
    for name, image in images.items():
        np.testing.assert_array_equal(reader.read(name, np.array([slot]))[0], image)


def test_the_pipeline_computes_appearance_only_when_enabled():
    from stag_features.adapters.synthetic_clips import make_dataset
    from stag_features.extract.face import make_backend
    from stag_features.extract.sample_pipeline import extract_sample
    from tests.motion.test_sample_pipeline import synthetic_record

    clip = make_dataset(n_subjects=1, clips_per_emotion=1, seed=7)[0]
    config = PipelineConfig().with_overrides(selection={"k": 2}, tvl1={"epsilon": 0.05},
                                             appearance={"enabled": True, "size": 24})
    backend = make_backend(config.face)
    features = extract_sample(synthetic_record(clip), config, backend=backend, frames=clip.frames)
    assert set(features.extras) == set(APPEARANCE_ARRAYS) and "appearance" in features.timings
    assert all(v.shape == (1, 24, 24) and v.dtype == np.float32 for v in features.extras.values())
    np.testing.assert_allclose(features.extras["difference_image"],
                               features.extras["apex_image"] - features.extras["onset_image"], atol=1e-6)
    assert np.abs(features.extras["difference_image"]).max() > 0  # the face moves between onset and apex
    plain = extract_sample(synthetic_record(clip), config.with_overrides(appearance={"enabled": False}),
                           backend=backend, frames=clip.frames)
    assert plain.extras == {} and "appearance" not in plain.timings
    np.testing.assert_array_equal(plain.flow, features.flow)  # appearance changes nothing else
