"""stag-fit end to end on a small store: outputs, reproducible CPU runs,
checkpoints that load with weights_only=True, STSTNet on identical folds."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch

from schemas.model_config import DataConfig, ModelConfig, StstnetConfig, TrainConfig
from stag_cli.fit import main
from stag_model.augment import flip_horizontally
from stag_model.data import make_source, open_samples
from stag_model.model import Stag
from stag_model.protocols import make_folds
from stag_model.train import MIXED_FIELDS, epoch_orders, mix_batch, predict, resolve_device, run_folds


def _run(samples, source, folds, seed, model="stag"):
    configs = dict(train=TrainConfig(model=model, epochs=3), model=ModelConfig(d_model=16),
                   ststnet=StstnetConfig(), data=DataConfig(scheme="demo"))
    return run_folds(samples, source, folds, configs, seed, torch.device("cpu"), log=lambda _: None)


def test_cpu_runs_are_reproducible_and_seeds_differ(synthetic_store):
    data = DataConfig(scheme="demo")
    samples = open_samples([synthetic_store], data)
    source = make_source(samples, data, torch.device("cpu"))
    folds = make_folds("loso", samples.subjects, samples.labels, samples.datasets)[:2]
    a, b, c = _run(samples, source, folds, 1), _run(samples, source, folds, 1), _run(samples, source, folds, 2)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x.probabilities, y.probabilities)
    assert not np.allclose(a[0].probabilities, c[0].probabilities)


def test_stag_fit_writes_every_output(synthetic_store, tmp_path, capsys):
    (tmp_path / "model.json").write_text(json.dumps({"d_model": 16, "gat_layers": 1}))
    out = tmp_path / "run"
    code = main(["--store", str(synthetic_store), "--protocol", "loso", "--scheme", "demo", "--device", "cpu",
                 "--epochs", "4", "--seeds", "1,2", "--model-config", str(tmp_path / "model.json"), "--out", str(out)])
    assert code == 0
    printed = capsys.readouterr().out
    assert sum(line.startswith(("seed 1 fold", "seed 2 fold")) for line in printed.splitlines()) == 12  # a line a fold
    assert "UF1" in printed
    for name in ("config.json", "predictions.csv", "megc_log_seed1.txt", "megc_log_seed2.txt", "metrics.json",
                 "confusion.png", "attention.png", "report.md"):
        assert (out / name).is_file(), name
    metrics = json.loads((out / "metrics.json").read_text())
    table = pd.read_csv(out / "predictions.csv")
    assert len(table) == 2 * 36 and set(table.seed) == {1, 2}
    seed1 = table[table.seed == 1]
    assert metrics["per_seed"]["1"]["pooled"]["accuracy"] == pytest.approx((seed1.y_true == seed1.y_pred).mean())
    assert metrics["summary"]["uf1"]["values"] == [metrics["per_seed"][s]["pooled"]["uf1"] for s in ("1", "2")]
    assert metrics["subject_independent"] is True
    # every subject is tested exactly once per seed, in its own fold
    assert (seed1.groupby("subject").fold.nunique() == 1).all() and (seed1.fold == seed1.subject).all()
    checkpoint = torch.load(out / "checkpoints" / "seed1" / "s00.pt", weights_only=True)
    meta = checkpoint["metadata"]
    assert "s00" in meta["test_subjects"] and "s00" not in meta["train_subjects"]
    model = Stag(ModelConfig(**meta["configs"]["model"]), len(meta["class_names"]), len(meta["au_names"]), 5)
    model.load_state_dict(checkpoint["state_dict"])


def test_ststnet_runs_on_the_same_folds(synthetic_store, tmp_path):
    out = tmp_path / "ststnet"
    assert main(["--store", str(synthetic_store), "--scheme", "demo", "--model", "ststnet", "--device", "cpu",
                 "--epochs", "2", "--out", str(out), "--quiet"]) == 0
    table = pd.read_csv(out / "predictions.csv")
    assert sorted(table.fold.unique()) == [f"s{i:02d}" for i in range(6)]
    assert not (out / "attention.png").exists()  # STSTNet has no attention to draw


def test_clear_errors(synthetic_store, tmp_path, capsys):
    assert main(["--store", str(synthetic_store), "--scheme", "nope", "--device", "cpu", "--out", str(tmp_path)]) == 2
    assert "no class scheme 'nope'" in capsys.readouterr().err
    assert main(["--store", str(synthetic_store), "--scheme", "demo", "--protocol", "lodo", "--device", "cpu",
                 "--out", str(tmp_path)]) == 2
    assert "several datasets" in capsys.readouterr().err
    if torch.cuda.is_available():
        assert resolve_device("cuda").type == "cuda" and resolve_device("auto").type == "cuda"
    else:
        assert resolve_device("auto").type == "cpu"
        assert main(["--store", str(synthetic_store), "--scheme", "demo", "--device", "cuda", "--out", str(tmp_path)]) == 2
        assert "no CUDA device" in capsys.readouterr().err


def test_streamed_training_equals_in_memory_training(synthetic_store):
    """A store too large for the device is streamed through a DataLoader; the
    fit must not depend on which path delivered the batches."""
    resident, streamed = DataConfig(scheme="demo"), DataConfig(scheme="demo", keep_on_device_max_bytes=0, num_workers=0)
    samples = open_samples([synthetic_store], resident)
    folds = make_folds("loso", samples.subjects, samples.labels, samples.datasets)[:1]
    memory = _run(samples, make_source(samples, resident, torch.device("cpu")), folds, 1)
    source = make_source(samples, streamed, torch.device("cpu"))
    assert type(source).__name__ == "StreamingSource"
    stream = _run(samples, source, folds, 1)
    np.testing.assert_allclose(memory[0].probabilities, stream[0].probabilities, rtol=1e-5, atol=1e-6)


def test_test_time_flip_averages_each_sample_with_its_mirror_image(synthetic_store):
    data = DataConfig(scheme="demo")
    samples = open_samples([synthetic_store], data)
    source = make_source(samples, data, torch.device("cpu"))
    torch.manual_seed(0)
    model = Stag(ModelConfig(d_model=16), len(samples.class_names), len(samples.graph.au_names), 5).eval()
    positions = np.arange(len(samples))[:7]
    plain = predict(model, source, None, positions, 4, torch.device("cpu"), amp=False)
    averaged = predict(model, source, None, positions, 4, torch.device("cpu"), amp=False, test_time_flip=True)
    _, batch = next(source.batches(positions, len(positions)))
    mirrored = flip_horizontally(batch, torch.ones(len(positions), dtype=torch.bool), samples.graph)
    mirror_probs = model(mirrored)[0].softmax(-1).detach().numpy()
    np.testing.assert_allclose(averaged, (plain + mirror_probs) / 2, rtol=1e-5, atol=1e-6)
    assert not np.allclose(plain, mirror_probs, atol=1e-4)  # the model is not mirror-invariant, so the average matters


def test_mixup_mixes_every_feature_field_and_unites_frame_masks(make_batch):
    b = make_batch(batch=3, frames=2)
    b.frame_mask[0, 1] = False
    partner = torch.tensor([1, 2, 0])
    torch.testing.assert_close(mix_batch(b, partner, 1.0).flow, b.flow)
    mixed = mix_batch(b, partner, 0.25)
    for name in MIXED_FIELDS:
        torch.testing.assert_close(getattr(mixed, name), 0.25 * getattr(b, name) + 0.75 * getattr(b, name)[partner])
    assert mixed.frame_mask[0, 1] and not mix_batch(b, torch.tensor([0, 1, 2]), 0.5).frame_mask[0, 1]


def _first_fold_plain_and_variant(store, **train_overrides):
    """One LOSO fold trained for 2 epochs twice: default TrainConfig, then with ``train_overrides``."""
    data = DataConfig(scheme="demo")
    samples = open_samples([store], data)
    source = make_source(samples, data, torch.device("cpu"))
    fold = make_folds("loso", samples.subjects, samples.labels, samples.datasets)[:1]
    configs = dict(train=TrainConfig(epochs=2), model=ModelConfig(d_model=16), ststnet=StstnetConfig(), data=data)
    plain = run_folds(samples, source, fold, configs, 1, torch.device("cpu"), log=lambda _: None)[0]
    configs["train"] = TrainConfig(epochs=2, **train_overrides)
    variant = run_folds(samples, source, fold, configs, 1, torch.device("cpu"), log=lambda _: None)[0]
    return samples, source, fold[0], configs, plain, variant


def test_mixup_training_runs_and_changes_the_model(synthetic_store):
    *_, plain, mixed = _first_fold_plain_and_variant(synthetic_store, mixup_alpha=0.4)
    assert np.isfinite(mixed.train_loss).all()
    assert not np.allclose(plain.probabilities, mixed.probabilities)


def test_epoch_orders_are_reproducible_permutations_that_differ_by_epoch():
    positions = np.arange(10, 30)
    orders = epoch_orders(positions, 3, torch.Generator().manual_seed(5))
    assert len(orders) == 3 and all(sorted(o.tolist()) == positions.tolist() for o in orders)
    assert not np.array_equal(orders[0], orders[1])
    again = epoch_orders(positions, 3, torch.Generator().manual_seed(5))
    assert all(np.array_equal(a, b) for a, b in zip(orders, again))


def test_the_normaliser_pass_announces_the_first_epoch_it_precedes(synthetic_store):
    """fit_fold passes the first member's first epoch order to the normaliser's pass (``upcoming``),
    and that epoch then asks for exactly that order."""
    data = DataConfig(scheme="demo")
    samples = open_samples([synthetic_store], data)
    source = make_source(samples, data, torch.device("cpu"))
    calls, batches = [], source.batches
    source.batches = lambda positions, batch_size, generator=None, upcoming=None: (
        calls.append((np.asarray(positions).tolist(), None if upcoming is None else np.asarray(upcoming).tolist())),
        batches(positions, batch_size, generator, upcoming))[1]
    fold = make_folds("loso", samples.subjects, samples.labels, samples.datasets)[:1]
    configs = dict(train=TrainConfig(epochs=2), model=ModelConfig(d_model=16), ststnet=StstnetConfig(), data=data)
    run_folds(samples, source, fold, configs, 1, torch.device("cpu"), log=lambda _: None)
    (normaliser_pass, announced), (first_epoch, next_epoch) = calls[0], calls[1]
    assert sorted(normaliser_pass) == sorted(first_epoch) and announced == first_epoch
    assert next_epoch == calls[2][0] and first_epoch != calls[2][0]


def test_a_run_on_a_mixed_store_reports_each_source_dataset(store_builder, tmp_path):
    """A store whose samples record their source dataset: metrics.json and report.md give pooled
    figures per dataset and per subject, and LODO holds each dataset out."""
    store = store_builder(tmp_path / "mixed.zarr", subjects=6, per_subject=3, sources=("casme2", "samm", "smic"))
    out = tmp_path / "run"
    assert main(["--store", str(store), "--scheme", "demo", "--protocol", "lodo", "--device", "cpu", "--epochs", "1",
                 "--seeds", "1", "--parallel", "none", "--quiet", "--no-checkpoints", "--out", str(out)]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert sorted(metrics["per_dataset"]) == ["casme2", "samm", "smic"]
    assert all(m["n"] == 6 for m in metrics["per_dataset"].values()) and len(metrics["per_subject"]) == 6
    predictions = pd.read_csv(out / "predictions.csv")
    smic = predictions[predictions["dataset"] == "smic"]
    assert np.isclose(metrics["per_dataset"]["smic"]["accuracy"], (smic["y_true"] == smic["y_pred"]).mean())
    assert sorted(predictions["fold"].unique()) == ["casme2", "samm", "smic"]
    assert "| samm | 6 |" in (out / "report.md").read_text()
