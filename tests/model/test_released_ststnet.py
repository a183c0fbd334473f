"""STSTNet's released per-subject weights, read by `stag evaluate` on a composite store built by stag:
the released log reproduced subject by subject; broken releases refused with nothing run."""
from __future__ import annotations

import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from schemas.catalog import DatasetEntry
from schemas.model_config import DataConfig, StstnetConfig
from schemas.pipeline_config import PipelineConfig
from stag_cli.main import main
from stag_features.ingest.producers import producer_for
from stag_features.ingest.steps import ingest_in_process
from stag_model.baselines import Ststnet
from stag_model.data import make_source, open_samples
from stag_model.metrics import classification_metrics
from stag_model.released_weights import StstnetRelease

# two subjects of each source dataset on which the released model errs (35 samples)
SUBJECTS = ("007", "012", "s01", "s09", "sub05", "sub23")


def composite_subset(shared: Path, folder: Path, subjects: tuple[str, ...]) -> Path:
    """A composite store of the official rows of ``subjects`` only, built by the in-process ingest."""
    gt = shared / "annotations" / "megc2019" / "combined_3class_gt.csv"
    keep = []
    for line in gt.read_text().splitlines():
        dataset, subject = line.split(",")[:2]
        if (f"{int(subject):03d}" if dataset == "samm" else subject) in subjects:
            keep.append(line)
    sheet = folder / "subset_gt.csv"
    sheet.write_text("\n".join(keep) + "\n")
    entry = DatasetEntry(name="megc2019", adapter="megc2019", root=folder / "no-frames", annotations=sheet,
                         store=str(folder / "megc2019.zarr"), options={"flow_dir": str(shared / "megc2019_flow")})
    summary = ingest_in_process(entry, producer_for(entry, PipelineConfig()))
    assert summary.count("ok") == len(keep) and not summary.failures()
    return folder / "megc2019.zarr"


def released_log(shared: Path) -> dict[str, list[tuple[int, int]]]:
    """Per subject of the released log, its sorted (true, predicted) pairs."""
    text = (shared / "ststnet_release" / "STSTNet_python_logfile.txt").read_text()
    found = re.findall(r"Subject: (\S+)\s*\nPredicted\s*: \[([^\]]*)\]\s*\nGround Truth: \[([^\]]*)\]", text)
    numbers = lambda s: [int(x) for x in s.split(",")]  # noqa: E731
    return {subject: sorted(zip(numbers(true), numbers(pred))) for subject, pred, true in found}


@pytest.fixture(scope="module")
def subset_store(shared_data, tmp_path_factory) -> Path:
    return composite_subset(shared_data, tmp_path_factory.mktemp("composite"), SUBJECTS)


@pytest.fixture
def release_copy(shared_data, tmp_path) -> Path:
    """The weights of SUBJECTS (and the subject list) copied where a test may damage them."""
    folder = tmp_path / "release" / "weights"
    folder.mkdir(parents=True)
    for subject in SUBJECTS:
        shutil.copy(shared_data / "ststnet_release" / "weights" / f"{subject}.pth", folder)
    (folder.parent / "video442subName.txt").write_text("\n".join(SUBJECTS))
    return folder


def _evaluate(store: Path, weights: Path, out: Path) -> int:
    return main(["evaluate", "--store", str(store), "--checkpoints", str(weights), "--format", "ststnet-release",
                 "--protocol", "loso", "--device", "cpu", "--out", str(out), "--quiet"])


def test_released_weights_reproduce_the_released_log(subset_store, shared_data, tmp_path):
    """Per subject the multiset of (true, predicted) pairs equals the released log's; the pooled metrics
    over these subjects equal those of the log's pairs."""
    out = tmp_path / "run"
    assert _evaluate(subset_store, shared_data / "ststnet_release" / "weights", out) == 0
    table = pd.read_csv(out / "predictions.csv", dtype={"subject": str, "fold": str})
    log = released_log(shared_data)
    assert sorted(table.fold.unique()) == sorted(SUBJECTS) and (table.fold == table.subject).all()
    for subject in SUBJECTS:
        part = table[table.subject == subject]
        assert sorted(zip(part.y_true, part.y_pred)) == log[subject], subject
    pairs = [p for s in SUBJECTS for p in log[s]]
    theirs = classification_metrics([t for t, _ in pairs], [p for _, p in pairs], 3)
    ours = classification_metrics(table.y_true, table.y_pred, 3)
    assert (ours["uf1"], ours["uar"]) == pytest.approx((theirs["uf1"], theirs["uar"]), abs=1e-12)
    assert (out / "megc_log_seed0.txt").read_text().count("Subject:") == len(SUBJECTS)


def test_the_other_layer_order_does_not_reproduce_the_log(subset_store, shared_data):
    """The same weights in conv -> BN -> ReLU streams miss the log on some of these subjects."""
    data = DataConfig(scheme="megc2019-3")
    samples = open_samples([subset_store], data)
    source = make_source(samples, data, torch.device("cpu"))
    release, log = StstnetRelease.open(shared_data / "ststnet_release" / "weights"), released_log(shared_data)
    matches = {}
    for order in ("conv_relu_bn", "conv_bn_relu"):
        matched = 0
        for subject in SUBJECTS:
            model = Ststnet(StstnetConfig(layer_order=order), 3)
            model.load_state_dict(release.load(subject, "megc2019-3").state_dict)
            positions = np.flatnonzero(samples.subjects == subject)
            _, batch = next(iter(source.batches(positions, 64)))
            with torch.no_grad():
                predicted = model.eval()(batch)[0].argmax(1).tolist()
            matched += sorted(zip(samples.labels[positions].tolist(), predicted)) == log[subject]
        matches[order] = matched
    assert matches["conv_relu_bn"] == len(SUBJECTS) and matches["conv_bn_relu"] < len(SUBJECTS)


def test_a_missing_fold_is_refused_before_anything_is_written(subset_store, release_copy, tmp_path, capsys):
    (release_copy / "s09.pth").unlink()
    out = tmp_path / "run"
    assert _evaluate(subset_store, release_copy, out) == 2
    error = capsys.readouterr().err.strip()
    assert len(error.splitlines()) == 1 and "s09" in error and "no checkpoint" in error
    assert not out.exists()


def test_weights_of_another_architecture_are_refused(subset_store, release_copy, tmp_path, capsys):
    state = torch.load(release_copy / "012.pth", weights_only=True, map_location="cpu")
    state["conv1.weight"] = torch.zeros(4, 3, 3, 3)
    torch.save(state, release_copy / "012.pth")
    assert _evaluate(subset_store, release_copy, tmp_path / "run") == 2
    error = capsys.readouterr().err.strip()
    assert len(error.splitlines()) == 1
    assert "012.pth" in error and "(4, 3, 3, 3)" in error and "(3, 3, 3, 3)" in error


class _RunsCode:
    """Pickles as a call of exec that would write a marker file."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return exec, (f"open({str(self.marker)!r}, 'w').write('ran')",)


def test_a_pickle_that_would_run_code_is_refused_unrun(subset_store, release_copy, tmp_path, capsys):
    marker = tmp_path / "ran.txt"
    torch.save({"conv1.weight": torch.zeros(3, 3, 3, 3), "payload": _RunsCode(marker)}, release_copy / "s01.pth")
    assert _evaluate(subset_store, release_copy, tmp_path / "run") == 2
    error = capsys.readouterr().err.strip()
    assert len(error.splitlines()) == 1 and "s01.pth" in error and "exec" in error and "refused" in error
    assert not marker.exists()
