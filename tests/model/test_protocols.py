"""Folds and leakage: no subject on both sides of a LOSO fold, the training
path never reads test labels, statistics come from the training fold."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from schemas.model_config import DataConfig, ModelConfig, StstnetConfig, TrainConfig
from stag_model.data import make_source, open_samples
from stag_model.protocols import (
    GuardedLabels,
    LeakageError,
    au_cooccurrence_prior,
    class_weights,
    inner_validation_split,
    make_folds,
)
from stag_model.train import fit_fold

SUBJECTS = np.array(["a", "a", "b", "b", "b", "c", "c", "d", "d", "d", "e", "e"])
LABELS = np.array([0, 1, 0, 1, 2, 0, 2, 1, 1, 0, 2, 0])
DATASETS = np.array(["x"] * 5 + ["y"] * 7)


def _check_partition(folds, n):
    tested = np.concatenate([f.test for f in folds])
    assert sorted(tested.tolist()) == list(range(n))  # every sample tested exactly once
    for f in folds:
        assert not set(f.train) & set(f.test)


def test_loso_never_shares_a_subject():
    folds = make_folds("loso", SUBJECTS, LABELS, DATASETS)
    assert [f.name for f in folds] == ["a", "b", "c", "d", "e"]
    _check_partition(folds, len(SUBJECTS))
    for f in folds:
        assert set(SUBJECTS[f.test]) == {f.name}
        assert f.name not in set(SUBJECTS[f.train])


def test_groupkfold_and_lodo_are_subject_and_dataset_disjoint():
    folds = make_folds("groupkfold", SUBJECTS, LABELS, DATASETS, n_splits=3)
    assert len(folds) == 3
    _check_partition(folds, len(SUBJECTS))
    for f in folds:
        assert not set(SUBJECTS[f.train]) & set(SUBJECTS[f.test])
    folds = make_folds("lodo", SUBJECTS, LABELS, DATASETS)
    assert [f.name for f in folds] == ["x", "y"]
    for f in folds:
        assert set(DATASETS[f.test]) == {f.name} and f.name not in set(DATASETS[f.train])
    with pytest.raises(ValueError, match="several datasets"):
        make_folds("lodo", SUBJECTS, LABELS, np.array(["x"] * len(SUBJECTS)))


def test_stratified_is_by_clip_and_mixes_subjects():
    folds = make_folds("stratified", SUBJECTS, LABELS, DATASETS, n_splits=3, seed=0)
    _check_partition(folds, len(SUBJECTS))
    assert any(set(SUBJECTS[f.train]) & set(SUBJECTS[f.test]) for f in folds)  # subject-dependent, as documented


def test_inner_validation_takes_whole_training_subjects():
    fold = make_folds("loso", SUBJECTS, LABELS, DATASETS)[0]
    inner = inner_validation_split(fold, SUBJECTS, 0.3, seed=0)
    assert len(inner.validation) > 0
    assert not set(SUBJECTS[inner.validation]) & set(SUBJECTS[inner.train])
    assert set(inner.train) | set(inner.validation) == set(fold.train)
    assert not set(inner.validation) & set(fold.test)


def test_guarded_labels_refuse_test_positions():
    guarded = GuardedLabels(LABELS, allowed=np.array([0, 1, 2]), fold="t")
    assert guarded[np.array([0, 2])].tolist() == [0, 0]
    with pytest.raises(LeakageError, match="outside the training fold"):
        guarded[np.array([1, 5])]


def test_training_fold_statistics():
    w = class_weights(np.array([0, 0, 0, 1]), 3)
    assert w[2] == 0 and w[1] == pytest.approx(3 * w[0]) and w[w > 0].mean() == pytest.approx(1.0)
    root = class_weights(np.array([0, 0, 0, 0, 1]), 3, power=0.5)
    assert root[2] == 0 and root[1] == pytest.approx(2 * root[0]) and root[root > 0].mean() == pytest.approx(1.0)
    truth = np.array([[1, 1, 0], [1, 0, -1], [0, 1, 1]], dtype=np.int8)
    prior = au_cooccurrence_prior(truth)
    assert prior[0, 1] == pytest.approx(0.5)  # AU0 coded twice, with AU1 once
    assert prior[1, 2] == pytest.approx(0.5) and prior[2, 1] == pytest.approx(1.0)
    assert np.all(np.diag(prior) == 0)


@pytest.mark.parametrize("validation", ["none", "inner_subjects"])
def test_training_runs_with_test_labels_inaccessible(synthetic_store, validation):
    """The labels the trainer holds refuse the test fold, and the store's test
    labels are scrambled in memory: training must run and predict exactly as
    with the true labels (so nothing on the training path read them)."""
    data = DataConfig(scheme="demo")
    samples = open_samples([synthetic_store], data)
    source = make_source(samples, data, torch.device("cpu"))
    fold = make_folds("loso", samples.subjects, samples.labels, samples.datasets)[0]
    configs = dict(train=TrainConfig(epochs=2, validation=validation, validation_fraction=0.25),
                   model=ModelConfig(d_model=16), ststnet=StstnetConfig(), data=data)
    honest = fit_fold(samples, source, fold, GuardedLabels(samples.labels, fold.train, fold.name), configs, 1,
                      torch.device("cpu"))
    scrambled = samples.labels.copy()
    scrambled[fold.test] = (scrambled[fold.test] + 1) % len(samples.class_names)
    au_scrambled = samples.au_truth.copy()
    au_scrambled[fold.test] = 1 - au_scrambled[fold.test]
    leaky_view = dataclasses.replace(samples, labels=scrambled, au_truth=au_scrambled)
    again = fit_fold(leaky_view, source, fold, GuardedLabels(scrambled, fold.train, fold.name), configs, 1,
                     torch.device("cpu"))
    np.testing.assert_array_equal(honest.probabilities, again.probabilities)
    assert set(honest.metadata["test_subjects"]).isdisjoint(honest.metadata["train_subjects"])


def test_lodo_inside_one_store_holds_out_each_source_dataset(store_builder, tmp_path):
    """A store whose samples record their source dataset (the MEGC 2019 composite) gives one
    leave-one-dataset-out fold per source; a store without the array has one dataset only."""
    store = store_builder(tmp_path / "mixed.zarr", subjects=6, per_subject=2, sources=("casme2", "samm", "smic"))
    samples = open_samples([store], DataConfig(scheme="demo"))
    assert sorted(set(samples.datasets.tolist())) == ["casme2", "samm", "smic"]
    folds = make_folds("lodo", samples.subjects, samples.labels, samples.datasets)
    assert [f.name for f in folds] == ["casme2", "samm", "smic"]
    for fold in folds:
        assert set(samples.datasets[fold.test].tolist()) == {fold.name}
        assert fold.name not in set(samples.datasets[fold.train].tolist())
        assert len(fold.test) == 4  # 2 subjects x 2 clips each
    plain = store_builder(tmp_path / "plain.zarr", subjects=3, per_subject=2)
    one = open_samples([plain], DataConfig(scheme="demo"))
    with pytest.raises(ValueError, match="needs several datasets"):
        make_folds("lodo", one.subjects, one.labels, one.datasets)
