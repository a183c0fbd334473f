"""Training curves as TensorBoard event files: one run per (seed, fold), training (and validation)
scalars per epoch on every training path, and never a test-fold figure."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from schemas.model_config import DataConfig, ModelConfig, StstnetConfig, TrainConfig
from stag_model.data import make_source, open_samples
from stag_model.protocols import make_folds
from stag_model.train import run_protocol
from stag_model.training_log import EVENTS_FOLDER, LOGGED_PREFIXES, EpochRecord, TrainingLog, folder_name

CPU = torch.device("cpu")
EPOCHS = 3
TRAINING_TAGS = {"train/loss", "train/accuracy"}
VALIDATION_TAGS = {"validation/uf1", "validation/accuracy"}


def _scalars(folder: Path) -> dict[str, list[tuple[int, float]]]:
    """{tag: [(step, value)]} of every event file in ``folder``."""
    events = EventAccumulator(str(folder))
    events.Reload()
    return {tag: [(e.step, e.value) for e in events.Scalars(tag)] for tag in events.Tags()["scalars"]}


def _train(store: Path, tmp_path: Path, parallel: str, validation: str = "none"):
    data = DataConfig(scheme="demo")
    samples = open_samples([store], data)
    source = make_source(samples, data, CPU)
    folds = make_folds("loso", samples.subjects, samples.labels, samples.datasets)[:3]
    configs = dict(train=TrainConfig(epochs=EPOCHS, seeds=(1,), parallel=parallel, validation=validation,
                                     processes=2),
                   model=ModelConfig(d_model=16, gat_layers=1), ststnet=StstnetConfig(), data=data)
    folder = tmp_path / EVENTS_FOLDER
    with TrainingLog(folder) as monitor:
        results, path = run_protocol(samples, source, folds, configs, CPU, log=lambda _: None, monitor=monitor)
    return folder, results[1], path


@pytest.mark.parametrize("parallel", ["none", "processes", "vmap"])
def test_each_fold_has_its_training_curves_and_no_test_figure(synthetic_store, tmp_path, parallel):
    folder, results, path = _train(synthetic_store, tmp_path, parallel)
    assert path.startswith({"none": "fold by fold", "processes": "processes", "vmap": "vmap"}[parallel])
    for result in results:
        scalars = _scalars(folder / "seed1" / folder_name(result.fold))
        assert set(scalars) == TRAINING_TAGS, (result.fold, set(scalars))
        assert all(tag.startswith(LOGGED_PREFIXES) for tag in scalars)  # nothing of the test fold
        assert [step for step, _ in scalars["train/loss"]] == list(range(1, EPOCHS + 1))
        np.testing.assert_allclose([v for _, v in scalars["train/loss"]], result.train_loss, rtol=1e-5)
        np.testing.assert_allclose([v for _, v in scalars["train/accuracy"]], result.train_accuracy, rtol=1e-5)
        assert all(0.0 <= v <= 1.0 for _, v in scalars["train/accuracy"])


def test_a_validation_split_adds_its_curves(synthetic_store, tmp_path):
    folder, results, _path = _train(synthetic_store, tmp_path, "none", validation="inner_subjects")
    for result in results:
        scalars = _scalars(folder / "seed1" / folder_name(result.fold))
        assert set(scalars) == TRAINING_TAGS | VALIDATION_TAGS
        np.testing.assert_allclose([v for _, v in scalars["validation/uf1"]], result.validation_uf1, rtol=1e-5)


def test_a_test_fold_figure_is_refused(tmp_path):
    with TrainingLog(tmp_path) as monitor, pytest.raises(ValueError, match="never logged per epoch"):
        monitor.epoch(EpochRecord(1, "s01", 1, 2, {"train/loss": 0.5, "test/uf1": 0.9}))
    assert not list(tmp_path.rglob("events.out.tfevents.*"))  # refused before anything was written


def test_stag_fit_writes_the_curves_into_its_run_folder(synthetic_store, tmp_path):
    from stag_cli.fit import main

    out = tmp_path / "run"
    assert main(["--store", str(synthetic_store), "--scheme", "demo", "--device", "cpu", "--epochs", "2",
                 "--parallel", "none", "--out", str(out), "--quiet", "--no-checkpoints"]) == 0
    runs = sorted(p.parent for p in (out / EVENTS_FOLDER).rglob("events.out.tfevents.*"))
    assert len(runs) == 6 and all(set(_scalars(run)) == TRAINING_TAGS for run in runs)  # 6 subjects, 1 seed
    assert (out / "curves.png").is_file() and "curves.png" in (out / "report.md").read_text()
    assert "checkpoints/" not in (out / "report.md").read_text()
