"""Folds in worker processes (stag_model.fold_processes): each fold trains as it does alone in the
reference loop, dropout included (its randomness comes from its own seed), and results come back in
fold order whatever order the workers finish in."""
from __future__ import annotations

import dataclasses

import numpy as np
import torch

from schemas.model_config import DataConfig, ModelConfig, StstnetConfig, TrainConfig
from stag_model.data import make_source, open_samples
from stag_model.fold_processes import run_in_processes
from stag_model.protocols import make_folds
from stag_model.train import run_folds

CPU = torch.device("cpu")


def test_each_fold_in_a_worker_trains_as_it_does_alone(synthetic_store):
    data = DataConfig(scheme="demo")
    samples = open_samples([synthetic_store], data)
    source = make_source(samples, data, CPU)
    folds = make_folds("loso", samples.subjects, samples.labels, samples.datasets)
    configs = dict(train=TrainConfig(epochs=3), model=ModelConfig(d_model=16), ststnet=StstnetConfig(), data=data)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as in the workers, so that float sums run in the same order
    try:
        reference = {s: run_folds(samples, source, folds, configs, s, CPU, log=lambda _: None) for s in (1, 2)}
    finally:
        torch.set_num_threads(threads)
    said = []
    workers = run_in_processes(samples, folds, configs, (1, 2), processes=2, log=said.append)
    assert len(said) == 2 * len(folds)
    for seed in (1, 2):
        assert [r.fold for r in workers[seed]] == [f.name for f in folds]
        for ref, got in zip(reference[seed], workers[seed]):
            np.testing.assert_allclose(got.train_loss, ref.train_loss, rtol=1e-4)
            np.testing.assert_allclose(got.probabilities, ref.probabilities, atol=1e-3)


def test_workers_read_labels_through_the_guard(synthetic_store):
    """A fold's test labels scrambled in the samples the workers receive change nothing for that fold."""
    data = DataConfig(scheme="demo")
    samples = open_samples([synthetic_store], data)
    folds = make_folds("loso", samples.subjects, samples.labels, samples.datasets)[:1]
    configs = dict(train=TrainConfig(epochs=2), model=ModelConfig(d_model=16), ststnet=StstnetConfig(), data=data)
    honest = run_in_processes(samples, folds, configs, (1,), processes=1, log=lambda _: None)[1][0]
    labels = samples.labels.copy()
    labels[folds[0].test] = (labels[folds[0].test] + 1) % len(samples.class_names)
    scrambled = run_in_processes(dataclasses.replace(samples, labels=labels), folds, configs, (1,), processes=1,
                                 log=lambda _: None)[1][0]
    np.testing.assert_array_equal(honest.probabilities, scrambled.probabilities)
