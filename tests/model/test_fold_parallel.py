"""Fold-parallel training (stag_model.fold_parallel) against the fold-by-fold reference: the same loss
curves and predictions per fold where the random streams can be equal (dropout off), the test fold's
labels out of reach, padded samples out of batch-norm statistics, and a clear fallback."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from schemas.model_config import DataConfig, ModelConfig, StstnetConfig, TrainConfig
from stag_model.data import make_source, open_samples
from stag_model.fold_parallel import MaskedBatchNorm2d, run_parallel, supported, valid_samples
from stag_model.protocols import make_folds
from stag_model.train import parallel_mode, run_folds, run_protocol

CPU = torch.device("cpu")
NO_DROPOUT = ModelConfig(d_model=16, dropout=0.0, frame_dropout=0.0)


@pytest.fixture(scope="module")
def uneven_store(tmp_path_factory):
    """7 clips per subject and batches of 8: folds' epochs end in batches of different sizes."""
    from .conftest import build_store  # noqa: TID252

    return build_store(tmp_path_factory.mktemp("fp") / "uneven.zarr", subjects=6, per_subject=7)


def _both_paths(store, model: str, epochs: int = 3, seeds=(1,), model_config: ModelConfig = NO_DROPOUT, **train_over):
    data = DataConfig(scheme="demo")
    samples = open_samples([store], data)
    source = make_source(samples, data, CPU)
    folds = make_folds("loso", samples.subjects, samples.labels, samples.datasets)
    configs = dict(train=TrainConfig(model=model, epochs=epochs, batch_size=8, **train_over), model=model_config,
                   ststnet=StstnetConfig(dropout=0.0), data=data)
    reference = {s: run_folds(samples, source, folds, configs, s, CPU, log=lambda _: None) for s in seeds}
    parallel = run_parallel(samples, source, folds, configs, seeds, CPU, log=lambda _: None)
    return reference, parallel


@pytest.mark.parametrize("model", ["stag", "ststnet"])
def test_each_fold_trains_as_it_does_alone(uneven_store, model):
    reference, parallel = _both_paths(uneven_store, model, seeds=(1, 2))
    for seed in (1, 2):
        assert [r.fold for r in reference[seed]] == [p.fold for p in parallel[seed]]
        for ref, par in zip(reference[seed], parallel[seed]):
            np.testing.assert_allclose(par.train_loss, ref.train_loss, rtol=1e-5, atol=1e-5)
            np.testing.assert_allclose(par.probabilities, ref.probabilities, atol=2e-3)
            assert (par.probabilities.argmax(1) == ref.probabilities.argmax(1)).mean() >= 0.9
            assert par.state_dict.keys() == ref.state_dict.keys()  # checkpoints of the same model
    assert not np.allclose(parallel[1][0].probabilities, parallel[2][0].probabilities)  # seeds differ


def test_own_frame_encoders_train_alike_on_both_paths(uneven_store):
    config = NO_DROPOUT.model_copy(update={"frame_encoders": 2})
    reference, parallel = _both_paths(uneven_store, "stag", epochs=2, model_config=config)
    for ref, par in zip(reference[1], parallel[1]):
        np.testing.assert_allclose(par.train_loss, ref.train_loss, rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(par.probabilities, ref.probabilities, atol=2e-3)
    assert any("later_frame_encoders" in k for k in parallel[1][0].state_dict)


def test_parallel_groups_give_the_same_folds(uneven_store):
    data = DataConfig(scheme="demo")
    samples = open_samples([uneven_store], data)
    source = make_source(samples, data, CPU)
    folds = make_folds("loso", samples.subjects, samples.labels, samples.datasets)
    configs = dict(train=TrainConfig(epochs=2, batch_size=8), model=NO_DROPOUT, ststnet=StstnetConfig(), data=data)
    together = run_parallel(samples, source, folds, configs, (1,), CPU, log=lambda _: None)[1]
    in_threes = run_parallel(samples, source, folds, configs.copy() | {"train": TrainConfig(
        epochs=2, batch_size=8, parallel_members=3)}, (1,), CPU, log=lambda _: None)[1]
    for a, b in zip(together, in_threes):
        np.testing.assert_allclose(a.probabilities, b.probabilities, atol=1e-4)


def test_a_fold_never_sees_its_test_labels(uneven_store):
    """Fold 0's test labels and AUs are scrambled (they train the other folds): fold 0's model, trained
    together with the others, comes out exactly the same."""
    data = DataConfig(scheme="demo")
    samples = open_samples([uneven_store], data)
    source = make_source(samples, data, CPU)
    folds = make_folds("loso", samples.subjects, samples.labels, samples.datasets)
    configs = dict(train=TrainConfig(epochs=2, batch_size=8), model=ModelConfig(d_model=16),
                   ststnet=StstnetConfig(), data=data)
    torch.manual_seed(0)  # vmap draws the dropout masks from the global generator
    honest = run_parallel(samples, source, folds, configs, (1,), CPU, log=lambda _: None)[1]
    test = folds[0].test
    labels, aus = samples.labels.copy(), samples.au_truth.copy()
    labels[test] = (labels[test] + 1) % len(samples.class_names)
    aus[test] = 1 - aus[test]
    torch.manual_seed(0)
    scrambled = run_parallel(dataclasses.replace(samples, labels=labels, au_truth=aus), source, folds, configs,
                             (1,), CPU, log=lambda _: None)[1]
    np.testing.assert_array_equal(honest[0].probabilities, scrambled[0].probabilities)
    assert not np.array_equal(honest[1].probabilities, scrambled[1].probabilities)  # they trained the others


def test_masked_batch_norm_ignores_padded_samples():
    torch.manual_seed(0)
    x = torch.randn(6, 3, 4, 4)
    valid = torch.tensor([True, True, True, True, False, False])
    reference, masked = torch.nn.BatchNorm2d(3), MaskedBatchNorm2d(3)
    expected = reference(x[:4])
    padded = x.clone()
    padded[4:] = 1e3  # whatever the padding holds
    with valid_samples(valid):
        out = masked(padded)
    torch.testing.assert_close(out[:4], expected, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(masked.running_mean, reference.running_mean)
    torch.testing.assert_close(masked.running_var, reference.running_var)
    with valid_samples(valid):  # rows of frames: (B * K, C, H, W) with K = 2 repeats each sample's flag
        framed = masked(torch.cat([x, x]).view(2, 6, 3, 4, 4).transpose(0, 1).reshape(12, 3, 4, 4))
    assert torch.isfinite(framed).all()
    masked.eval()
    torch.testing.assert_close(masked(x), torch.nn.functional.batch_norm(
        x, masked.running_mean, masked.running_var, masked.weight, masked.bias, False))


def test_unsupported_configurations_run_fold_by_fold(uneven_store):
    data = DataConfig(scheme="demo")
    samples = open_samples([uneven_store], data)
    source = make_source(samples, data, CPU)
    assert supported(source, TrainConfig()) is None
    assert "inner validation" in supported(source, TrainConfig(validation="inner_subjects"))
    assert "mixup" in supported(source, TrainConfig(mixup_alpha=0.2))
    folds = make_folds("loso", samples.subjects, samples.labels, samples.datasets)[:1]
    configs = dict(train=TrainConfig(epochs=1, mixup_alpha=0.2, parallel="vmap"), model=ModelConfig(d_model=16),
                   ststnet=StstnetConfig(), data=data)
    said = []
    results, path = run_protocol(samples, source, folds, configs, CPU, log=said.append)
    assert path.startswith("fold by fold (mixup is on)") and said[0] == "training fold by fold: mixup is on"
    assert len(results[1]) == 1
    assert parallel_mode(TrainConfig(parallel="processes"), source, torch.device("cuda"))[0] == "none"
    assert parallel_mode(TrainConfig(parallel="none"), source, CPU) == ("none", "")
