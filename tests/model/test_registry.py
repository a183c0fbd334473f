"""The model registry (issue 25): one training loop and one evaluation path for STAG, STSTNet,
TSFmicro and MEGANet; the inputs each reads, refused or substituted (and then named) where a store
lacks them; the published training recipe as TrainConfig defaults; checkpoints of image models."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from schemas.model_config import DataConfig, MeganetConfig, TrainConfig, TsfmicroConfig
from schemas.pipeline_config import PipelineConfig
from schemas.store_spec import (
    APEX_FACE,
    APPEARANCE_ARRAYS,
    DIFFERENCE_IMAGE,
    MESTI_IMAGE,
    ONSET_IMAGE,
    StoreLayout,
)
from stag_features.store.identity import StoreIdentity
from stag_features.store.slots import write_sample
from stag_features.store.writer import allocate_slots, ensure_store
from stag_model import registry
from stag_model.baselines import Ststnet
from stag_model.data import make_source, open_samples
from stag_model.image_models import FLOW_IMAGE, ImageModel
from stag_model.model import Stag
from stag_model.protocols import GuardedLabels, make_folds
from stag_model.train import _learning_rate_factor, fit_fold

from .conftest import AUS, CLASSES, EDGES, PATCH, ROIS, SIDE, synthetic_features  # noqa: TID252

IMAGE_SIDE, FACE_SIDE = 16, 20


def image_store(path: Path, producer: str = "pipeline", appearance: bool = True, apex_face: bool = False,
                subjects: int = 4, per_subject: int = 5) -> Path:
    """A store like conftest's synthetic one, with appearance arrays (grey, IMAGE_SIDE) and / or an apex
    face (FACE_SIDE) whose content depends on the class, made by ``producer``."""
    extra = (APPEARANCE_ARRAYS if appearance else ()) + ((APEX_FACE,) if apex_face else ())
    layout = StoreLayout(frames=2, height=SIDE, width=SIDE, time=8, patch=PATCH, roi_names=ROIS, au_names=AUS,
                         edges=EDGES, class_schemes={"demo": CLASSES}, extra_arrays=extra,
                         appearance_size=IMAGE_SIDE if appearance else 0, appearance_channels=1 if appearance else 0,
                         face_size=FACE_SIDE if apex_face else 0)
    config = PipelineConfig()
    identity = StoreIdentity(dataset="synthetic", producer=producer, config=config.provenance(),
                             config_hash=config.config_hash(), layout=layout, store_config=config.store,
                             flow_units="px")
    ensure_store(path, identity)
    items = [(f"s{s:02d}", f"c{c}", (s + c) % len(CLASSES)) for s in range(subjects) for c in range(per_subject)]
    slots = allocate_slots(path, [f"{s}/{c}" for s, c, _ in items])
    rng = np.random.default_rng(0)
    for i, (subject, clip, label) in enumerate(items):
        features = synthetic_features(subject, clip, label, i, 2)
        if appearance:
            for name in APPEARANCE_ARRAYS:
                features.extras[name] = (rng.normal(size=(1, IMAGE_SIDE, IMAGE_SIDE)) + label).astype(np.float32)
        if apex_face:
            features.extras[APEX_FACE] = rng.integers(0, 256, (FACE_SIDE, FACE_SIDE), dtype=np.uint8)
        write_sample(path, slots[f"{subject}/{clip}"], features, input_hash=f"h{i}")
    return path


@pytest.fixture(scope="module")
def appearance_store(tmp_path_factory) -> Path:
    return image_store(tmp_path_factory.mktemp("stores") / "appearance.zarr")


@pytest.fixture(scope="module")
def composite_like_store(tmp_path_factory) -> Path:
    """A store whose producer cannot make appearance (precomputed flow images), with an apex face."""
    return image_store(tmp_path_factory.mktemp("stores") / "composite.zarr", producer="composite_phases",
                       appearance=False, apex_face=True)


def _configs(model: str, epochs: int = 2, **sections) -> dict:
    train = TrainConfig(**{**registry.recipe_defaults(model), "model": model, "epochs": epochs, "device": "cpu",
                           "parallel": "none", "batch_size": 8})
    return {"train": train, **registry.default_configs(), **sections, "data": DataConfig(scheme="demo")}


def _prepared(store: Path, configs: dict):
    return registry.prepare_samples(open_samples([store], configs["data"]), configs)


def test_the_cli_offers_the_registry_and_flow_models_build_as_before(synthetic_store):
    from stag_cli.fit import parser

    choices = next(a.choices for a in parser()._actions if a.dest == "model")
    assert list(choices) == list(registry.MODELS) == ["stag", "ststnet", "tsfmicro", "meganet"]
    for name, cls in (("stag", Stag), ("ststnet", Ststnet)):
        configs = _configs(name)
        samples = _prepared(synthetic_store, configs)
        assert samples.images == () and samples.inputs == ()  # flow models read no image array
        assert type(registry.build(configs, samples)) is cls
    with pytest.raises(ValueError, match="unknown model 'nope'; known: stag, ststnet, tsfmicro, meganet"):
        registry.entry("nope")


@pytest.mark.parametrize("model, array", [("tsfmicro", DIFFERENCE_IMAGE), ("meganet", MESTI_IMAGE)])
def test_a_pipeline_store_without_appearance_is_refused_naming_the_array_and_the_fix(synthetic_store, model, array):
    with pytest.raises(ValueError) as error:
        _prepared(synthetic_store, _configs(model))
    message = str(error.value)
    assert f"lacks the array {array!r}" in message and str(synthetic_store) in message
    assert "appearance: {enabled: true}" in message and "\n" not in message


def test_the_cli_refuses_it_in_one_line(synthetic_store, tmp_path, capsys):
    from stag_cli.fit import main as stag_fit

    code = stag_fit(["--store", str(synthetic_store), "--scheme", "demo", "--model", "tsfmicro", "--epochs", "1",
                     "--device", "cpu", "--out", str(tmp_path / "run"), "--quiet"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "'difference_image'" in err, err


def test_a_store_with_appearance_gives_each_model_its_paper_input(appearance_store):
    tsf = _prepared(appearance_store, _configs("tsfmicro"))
    assert [(r.role, r.array, r.substitution) for r in tsf.inputs] == [
        ("difference", DIFFERENCE_IMAGE, ""), ("onset", ONSET_IMAGE, "")]
    assert tsf.images == (DIFFERENCE_IMAGE, ONSET_IMAGE)
    for choice, array in (("mesti", MESTI_IMAGE), ("apex", "apex_image"), ("dynamic_image", "dynamic_image"),
                          ("flow", FLOW_IMAGE)):
        meg = _prepared(appearance_store, _configs("meganet", meganet=MeganetConfig(input=choice)))
        assert [(r.array, r.substitution) for r in meg.inputs] == [(array, "")]
        assert meg.images == (() if array == FLOW_IMAGE else (array,))


def test_a_store_that_cannot_make_appearance_runs_on_named_substitutes(composite_like_store):
    tsf = _prepared(composite_like_store, _configs("tsfmicro"))
    assert [(r.role, r.array) for r in tsf.inputs] == [("difference", FLOW_IMAGE), ("onset", APEX_FACE)]
    assert all(r.substitution for r in tsf.inputs)
    assert "SUBSTITUTED" in registry.inputs_line(tsf) and "in place of the onset frame" in registry.inputs_line(tsf)
    assert registry.input_channels(tsf) == {"difference": 3 * 2, "onset": 1}  # (u, v, strain) of both frames
    meg = _prepared(composite_like_store, _configs("meganet"))
    assert [(r.array, bool(r.substitution)) for r in meg.inputs] == [(FLOW_IMAGE, True)]


def test_a_tsfmicro_without_a_branch_reads_only_the_other_branchs_input(appearance_store):
    for switched_off, kept in (("spatial_branch", ("difference", DIFFERENCE_IMAGE)),
                               ("temporal_branch", ("onset", ONSET_IMAGE))):
        configs = _configs("tsfmicro", epochs=1, tsfmicro=TsfmicroConfig(**{switched_off: False}))
        samples = _prepared(appearance_store, configs)
        assert [(r.role, r.array) for r in samples.inputs] == [kept] and samples.images == (kept[1],)
        source = make_source(samples, configs["data"], torch.device("cpu"))
        fold = make_folds("loso", samples.subjects, samples.labels, samples.datasets)[0]
        result = fit_fold(samples, source, fold, GuardedLabels(samples.labels, fold.train, fold.name), configs, 1,
                          torch.device("cpu"))
        assert set(result.attention) == {f"saliency:{kept[0]}"}


@pytest.mark.parametrize("model, store", [("tsfmicro", "appearance_store"), ("meganet", "appearance_store"),
                                          ("tsfmicro", "composite_like_store"), ("meganet", "composite_like_store")])
def test_image_models_train_in_the_one_loop(model, store, request):
    configs = _configs(model)
    samples = _prepared(request.getfixturevalue(store), configs)
    source = make_source(samples, configs["data"], torch.device("cpu"))
    fold = make_folds("loso", samples.subjects, samples.labels, samples.datasets)[0]
    result = fit_fold(samples, source, fold, GuardedLabels(samples.labels, fold.train, fold.name), configs, 1,
                      torch.device("cpu"))
    assert result.probabilities.shape == (len(fold.test), len(CLASSES))
    np.testing.assert_allclose(result.probabilities.sum(1), 1.0, rtol=1e-5)
    assert len(result.train_loss) == configs["train"].epochs and np.isfinite(result.train_loss).all()
    assert result.metadata["inputs"] == [r.as_json() for r in samples.inputs]
    assert set(result.metadata["normaliser"]["mean"]) >= set(samples.images)  # images z-scored on the training fold
    assert {k.split(":")[1] for k in result.attention} == {r.role for r in samples.inputs}  # a saliency map per input role
    assert all(len(v) > 0 and np.isfinite(v).all() and max(v) > 0 for v in result.attention.values())


def test_the_flow_image_stacks_every_frames_fields_in_order(make_batch):
    from stag_model.image_models import flow_image

    b = make_batch(batch=2, frames=3)
    image = flow_image(b)
    assert image.shape == (2, 9, *b.flow.shape[-2:])
    torch.testing.assert_close(image[:, 3:5], b.flow[:, 1])  # frame 1's u, v
    torch.testing.assert_close(image[:, 8], b.strain[:, 2])  # frame 2's strain
    masked = flow_image(type(b)(**{**vars(b), "frame_mask": torch.tensor([[True, True, False]] * 2)}))
    assert masked[:, 6:].abs().sum() == 0 and torch.equal(masked[:, :6], image[:, :6])  # a padded frame is zero


def test_an_image_model_reads_the_arrays_its_roles_name(appearance_store):
    configs = _configs("tsfmicro")
    samples = _prepared(appearance_store, configs)
    model = registry.build(configs, samples).eval()
    assert isinstance(model, ImageModel) and model.arrays == {"difference": DIFFERENCE_IMAGE, "onset": ONSET_IMAGE}
    source = make_source(samples, configs["data"], torch.device("cpu"))
    _, batch = next(iter(source.batches(np.arange(6), 6)))
    assert {k: tuple(v.shape) for k, v in batch.images.items()} == {
        DIFFERENCE_IMAGE: (6, 1, IMAGE_SIDE, IMAGE_SIDE), ONSET_IMAGE: (6, 1, IMAGE_SIDE, IMAGE_SIDE)}
    logits, _ = model(batch)
    changed = dict(batch.images, **{ONSET_IMAGE: batch.images[ONSET_IMAGE] + torch.randn_like(batch.images[ONSET_IMAGE])})
    other = model(type(batch)(**{**vars(batch), "images": changed}))[0]
    assert not torch.allclose(logits, other)  # the onset role reads onset_image


def test_a_models_recipe_gives_its_train_defaults_and_flags_override():
    from stag_cli.fit import parser, resolve_configs

    base = ["--store", "x.zarr", "--scheme", "demo"]
    tsf = resolve_configs(parser().parse_args([*base, "--model", "tsfmicro"]))["train"]
    recipe = TsfmicroConfig().recipe
    assert (tsf.learning_rate, tsf.weight_decay, tsf.schedule, tsf.lr_gamma, tsf.epochs, tsf.batch_size,
            tsf.warmup_epochs) == (8e-4, recipe.weight_decay, "exponential", recipe.lr_gamma, recipe.epochs, 32, 0)
    assert resolve_configs(parser().parse_args([*base, "--model", "tsfmicro", "--epochs", "3"]))["train"].epochs == 3
    for model in ("stag", "ststnet", "meganet"):  # no published recipe: TrainConfig's own defaults
        train = resolve_configs(parser().parse_args([*base, "--model", model]))["train"]
        assert train.model_dump(exclude={"model", "device"}) == TrainConfig().model_dump(exclude={"model", "device"})


def test_exponential_schedule_decays_by_gamma_per_epoch_after_the_warm_up():
    train = TrainConfig(schedule="exponential", lr_gamma=0.5, warmup_epochs=1, epochs=5)
    factors = [_learning_rate_factor(step, 2, train) for step in range(8)]
    assert factors == [0.5, 1.0, 1.0, 1.0, 0.5, 0.5, 0.25, 0.25]
    assert _learning_rate_factor(5, 2, TrainConfig(schedule="constant", warmup_epochs=0)) == 1.0


def test_a_run_names_its_substitutions_and_its_checkpoints_evaluate(composite_like_store, appearance_store, tmp_path,
                                                                    capsys):
    from stag_cli.fit import main as stag_fit
    from stag_cli.main import main as stag

    out = tmp_path / "run"
    assert stag_fit(["--store", str(composite_like_store), "--scheme", "demo", "--model", "tsfmicro", "--epochs", "1",
                     "--protocol", "groupkfold", "--folds", "2", "--device", "cpu", "--parallel", "none",
                     "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "tsfmicro inputs: difference <- flow (SUBSTITUTED: the store's flow fields" in printed
    report = (out / "report.md").read_text()
    assert "**substituted**: the apex face in place of the onset frame" in report
    assert "Input substitution" in report and "explanation.png" in report and (out / "explanation.png").is_file()
    inputs = json.loads((out / "metrics.json").read_text())["inputs"]
    assert [(i["role"], i["array"], bool(i["substitution"])) for i in inputs] == [
        ("difference", "flow", True), ("onset", "apex_face", True)]
    assert json.loads((out / "config.json").read_text())["inputs"] == inputs
    again = tmp_path / "again"
    assert stag(["evaluate", "--store", str(composite_like_store), "--checkpoints", str(out / "checkpoints"),
                 "--protocol", "groupkfold", "--folds", "2", "--device", "cpu", "--out", str(again), "--quiet"]) == 0
    trained, evaluated = (json.loads((d / "metrics.json").read_text())["summary"]["uf1"]["mean"] for d in (out, again))
    assert evaluated == pytest.approx(trained)
    capsys.readouterr()
    # the same checkpoints on a store that gives other inputs (the paper's) are refused, naming both
    assert stag(["evaluate", "--store", str(appearance_store), "--checkpoints", str(out / "checkpoints"),
                 "--protocol", "groupkfold", "--folds", "2", "--device", "cpu", "--out", str(tmp_path / "x"),
                 "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "trained on the inputs [('difference', 'flow'), ('onset', 'apex_face')]" in err
