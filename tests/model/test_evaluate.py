"""`stag evaluate` on stag-fit's own checkpoints: the same predictions as the run that wrote them,
and checkpoints that do not fit the store, the folds or the architecture refused in one line."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from stag_cli.fit import main as fit_main
from stag_cli.main import main


def _fit(store: Path, out: Path, model: str, overrides: dict) -> Path:
    config = out.parent / f"{model}.json"
    config.write_text(json.dumps(overrides))
    code = fit_main(["--store", str(store), "--protocol", "loso", "--scheme", "demo", "--device", "cpu",
                     "--epochs", "2", "--seeds", "1", "--parallel", "none", "--model", model,
                     "--model-config", str(config), "--out", str(out), "--quiet"])
    assert code == 0
    return out


@pytest.fixture(scope="module")
def stag_run(synthetic_store, tmp_path_factory) -> Path:
    return _fit(synthetic_store, tmp_path_factory.mktemp("fit") / "stag", "stag", {"d_model": 16, "gat_layers": 1})


@pytest.fixture(scope="module")
def ststnet_run(synthetic_store, tmp_path_factory) -> Path:
    """STSTNet reading the store's z-scored fields, so its input depends on the store's flow units."""
    return _fit(synthetic_store, tmp_path_factory.mktemp("fit") / "ststnet", "ststnet", {"input": "store"})


@pytest.fixture
def ststnet_checkpoints(ststnet_run, tmp_path) -> Path:
    """A copy of the STSTNet run's checkpoints that a test may damage."""
    return Path(shutil.copytree(ststnet_run / "checkpoints", tmp_path / "checkpoints"))


def _evaluate(store: Path, checkpoints: Path, out: Path, *extra: str) -> int:
    return main(["evaluate", "--store", str(store), "--checkpoints", str(checkpoints), "--protocol", "loso",
                 "--device", "cpu", "--out", str(out), "--quiet", *extra])


def _one_line_error(capsys) -> str:
    error = capsys.readouterr().err.strip()
    assert len(error.splitlines()) == 1 and error.startswith("stag evaluate: error:"), error
    return error


def _rewrite(path: Path, change) -> None:
    checkpoint = torch.load(path, weights_only=True)
    change(checkpoint)
    torch.save(checkpoint, path)


def test_evaluate_gives_the_predictions_of_the_run_that_wrote_the_checkpoints(stag_run, synthetic_store, tmp_path):
    out = tmp_path / "evaluated"
    assert _evaluate(synthetic_store, stag_run / "checkpoints", out) == 0
    fitted, evaluated = pd.read_csv(stag_run / "predictions.csv"), pd.read_csv(out / "predictions.csv")
    assert list(fitted.sample_id) == list(evaluated.sample_id) and list(fitted.fold) == list(evaluated.fold)
    assert (fitted.y_pred == evaluated.y_pred).all() and (fitted.y_true == evaluated.y_true).all()
    probabilities = [c for c in fitted.columns if c.startswith("p_")]
    np.testing.assert_allclose(evaluated[probabilities].to_numpy(), fitted[probabilities].to_numpy(), atol=1e-5)
    assert (out / "megc_log_seed1.txt").read_text() == (stag_run / "megc_log_seed1.txt").read_text()
    before, after = (json.loads((p / "metrics.json").read_text())["summary"] for p in (stag_run, out))
    assert after["uf1"]["values"] == pytest.approx(before["uf1"]["values"])
    assert (out / "report.md").read_text().startswith("# stag evaluate: stag")
    meta = torch.load(next((stag_run / "checkpoints" / "seed1").glob("*.pt")), weights_only=True)["metadata"]
    assert meta["input"]["flow_units"] == ["px"] and meta["input"]["frames"] == 3


def test_a_missing_fold_is_refused(synthetic_store, ststnet_checkpoints, tmp_path, capsys):
    (ststnet_checkpoints / "seed1" / "s03.pt").unlink()
    assert _evaluate(synthetic_store, ststnet_checkpoints, tmp_path / "out") == 2
    error = _one_line_error(capsys)
    assert "s03" in error and "seed1" in error and not (tmp_path / "out").exists()


def test_swapped_fold_files_are_refused(synthetic_store, ststnet_checkpoints, tmp_path, capsys):
    folder = ststnet_checkpoints / "seed1"
    (folder / "s01.pt").rename(folder / "tmp.pt")
    (folder / "s02.pt").rename(folder / "s01.pt")
    (folder / "tmp.pt").rename(folder / "s02.pt")
    assert _evaluate(synthetic_store, ststnet_checkpoints, tmp_path / "out") == 2
    error = _one_line_error(capsys)
    assert "testing subjects ['s02']" in error and "fold s01" in error


def test_weights_that_do_not_fit_the_named_architecture_are_refused(synthetic_store, ststnet_checkpoints, tmp_path,
                                                                    capsys):
    def wider(checkpoint):
        checkpoint["metadata"]["configs"]["ststnet"]["stream_channels"] = [4, 5, 8]

    _rewrite(ststnet_checkpoints / "seed1" / "s00.pt", wider)
    assert _evaluate(synthetic_store, ststnet_checkpoints, tmp_path / "out") == 2
    error = _one_line_error(capsys)
    assert "s00.pt" in error and "streams [4, 5, 8]" in error and "(3, 3, 3, 3)" in error and "(4, 3, 3, 3)" in error


def test_other_flow_units_or_classes_are_refused_naming_both(synthetic_store, ststnet_checkpoints, tmp_path, capsys):
    units = "normalised: u, v = channel/255 - uv_centre, strain = channel/255"

    def other_units(checkpoint):
        checkpoint["metadata"]["input"]["flow_units"] = [units]

    _rewrite(ststnet_checkpoints / "seed1" / "s00.pt", other_units)
    assert _evaluate(synthetic_store, ststnet_checkpoints, tmp_path / "out") == 2
    error = _one_line_error(capsys)
    assert units in error and "'px'" in error and "input store" in error

    def other_classes(checkpoint):
        checkpoint["metadata"]["class_names"] = ["negative", "positive", "surprise"]

    _rewrite(ststnet_checkpoints / "seed1" / "s00.pt", other_classes)
    assert _evaluate(synthetic_store, ststnet_checkpoints, tmp_path / "out") == 2
    error = _one_line_error(capsys)
    assert "['negative', 'positive', 'surprise']" in error and "['brows_up', 'smile', 'jaw_drop']" in error


class _RunsCode:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return exec, (f"open({str(self.marker)!r}, 'w').write('ran')",)


def test_a_checkpoint_that_would_run_code_is_refused_unrun(synthetic_store, ststnet_checkpoints, tmp_path, capsys):
    marker = tmp_path / "ran.txt"
    path = ststnet_checkpoints / "seed1" / "s00.pt"
    checkpoint = torch.load(path, weights_only=True)
    torch.save({**checkpoint, "metadata": {**checkpoint["metadata"], "hook": _RunsCode(marker)}}, path)
    assert _evaluate(synthetic_store, ststnet_checkpoints, tmp_path / "out") == 2
    error = _one_line_error(capsys)
    assert "s00.pt" in error and "call exec" in error and not marker.exists()


def test_released_weights_given_as_stag_checkpoints_get_a_hint(synthetic_store, shared_data, tmp_path, capsys):
    assert _evaluate(synthetic_store, shared_data / "ststnet_release" / "weights", tmp_path / "out") == 2
    assert "--format ststnet-release" in _one_line_error(capsys)
