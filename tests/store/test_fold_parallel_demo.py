"""Both training paths on a store the real pipeline wrote (the tiny demo: 10 clips, 2 subjects,
K = 3 frames, 15 ROIs): per-fold predictions agree where the random streams can (dropout off)."""
from __future__ import annotations

import numpy as np
import torch

from schemas.model_config import DataConfig, ModelConfig, StstnetConfig, TrainConfig
from stag_model.data import make_source, open_samples
from stag_model.fold_parallel import run_parallel
from stag_model.protocols import make_folds
from stag_model.train import run_folds

CPU = torch.device("cpu")


def test_fold_parallel_predicts_each_demo_fold_like_the_reference(threaded_demo_store):
    _catalog, store = threaded_demo_store
    data = DataConfig(scheme="demo")
    samples = open_samples([store], data)
    source = make_source(samples, data, CPU)
    folds = make_folds("loso", samples.subjects, samples.labels, samples.datasets)
    assert len(folds) == 2 and samples.graph.roi_names[0] != "cell_r0_c0"  # real ROIs, not grid cells
    configs = dict(train=TrainConfig(epochs=4, batch_size=4), model=ModelConfig(d_model=16, dropout=0.0,
                   frame_dropout=0.0), ststnet=StstnetConfig(), data=data)
    reference = run_folds(samples, source, folds, configs, 1, CPU, log=lambda _: None)
    parallel = run_parallel(samples, source, folds, configs, (1,), CPU, log=lambda _: None)[1]
    for ref, par in zip(reference, parallel):
        assert ref.fold == par.fold and np.array_equal(ref.test_positions, par.test_positions)
        np.testing.assert_allclose(par.train_loss, ref.train_loss, rtol=1e-4)
        np.testing.assert_allclose(par.probabilities, ref.probabilities, atol=1e-3)
        assert np.array_equal(par.probabilities.argmax(1), ref.probabilities.argmax(1))
