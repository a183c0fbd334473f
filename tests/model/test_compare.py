"""`stag compare`: agreement, McNemar's test and the metrics of two prediction files."""
from __future__ import annotations

from math import comb

import pandas as pd
import pytest

from stag_cli.main import main
from stag_model.compare import compare_predictions, mcnemar, read_predictions
from stag_model.metrics import classification_metrics

CLASSES = ("negative", "positive", "surprise")


def _write(path, y_true, y_pred, seed=1, ids=None):
    ids = ids or [f"s{i % 4}/c{i}" for i in range(len(y_true))]
    rows = [{"seed": seed, "fold": i.split("/")[0], "sample_id": i, "subject": i.split("/")[0], "dataset": "d",
             "y_true": t, "y_pred": p, "true_class": CLASSES[t], "predicted_class": CLASSES[p],
             **{f"p_{c}": float(k == p) for k, c in enumerate(CLASSES)}} for i, t, p in zip(ids, y_true, y_pred)]
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


def test_counts_agreement_and_exact_mcnemar(tmp_path):
    """30 samples: both right on 12, only A right on 10, only B right on 2, both wrong on 6 (4 of them alike)."""
    y_true = [0, 1, 2] * 10
    wrong = lambda t: (t + 1) % 3  # noqa: E731
    other = lambda t: (t + 2) % 3  # noqa: E731
    a = [*y_true[:12], *y_true[12:22], *[wrong(t) for t in y_true[22:24]], *[wrong(t) for t in y_true[24:30]]]
    b = [*y_true[:12], *[wrong(t) for t in y_true[12:22]], *y_true[22:24], *[wrong(t) for t in y_true[24:28]],
         *[other(t) for t in y_true[28:30]]]
    c = compare_predictions(read_predictions(_write(tmp_path / "a.csv", y_true, a)),
                            read_predictions(_write(tmp_path / "b.csv", y_true, b)))
    assert (c.a_only_right, c.b_only_right) == (10, 2)
    assert len(c.differing) == 10 + 2 + 2 and c.agreement == pytest.approx(16 / 30)
    assert c.mcnemar_p == pytest.approx(2 * sum(comb(12, k) for k in range(3)) / 2**12)  # 0.0386
    assert c.mcnemar_chi2 == pytest.approx((10 - 2 - 1) ** 2 / 12)
    assert c.metrics["A common"] == classification_metrics(y_true, a, 3, CLASSES)
    assert set(c.differing.right) == {"A", "B", "neither"}


def test_only_common_samples_are_compared_and_reported(tmp_path):
    a = _write(tmp_path / "a.csv", [0, 1, 2, 0], [0, 1, 2, 0], ids=["x/1", "x/2", "y/3", "y/4"])
    b = _write(tmp_path / "b.csv", [1, 2, 0], [1, 0, 0], ids=["x/2", "y/3", "z/5"])
    c = compare_predictions(read_predictions(a), read_predictions(b))
    assert c.common == ["x/2", "y/3"] and c.only_a == ["x/1", "y/4"] and c.only_b == ["z/5"]
    assert list(c.differing.sample_id) == ["y/3"] and c.metrics["A file"]["n"] == 4


def test_mcnemar_without_discordant_pairs_is_no_evidence():
    assert mcnemar(0, 0) == (1.0, 0.0)
    assert mcnemar(5, 5)[0] == 1.0


def test_cli_prints_the_comparison_and_refuses_files_it_cannot_compare(tmp_path, capsys):
    a = _write(tmp_path / "a.csv", [0, 1, 2, 0], [0, 1, 1, 0])
    b = _write(tmp_path / "b.csv", [0, 1, 2, 0], [0, 2, 2, 0])
    assert main(["compare", str(a), str(b), "--out", str(tmp_path / "diff.csv")]) == 0
    printed = capsys.readouterr().out
    assert "agreement 0.5000" in printed and "McNemar" in printed and "UF1" in printed
    assert len(pd.read_csv(tmp_path / "diff.csv")) == 2
    other_truth = _write(tmp_path / "c.csv", [1, 1, 2, 0], [0, 2, 2, 0])
    assert main(["compare", str(a), str(other_truth)]) == 2
    error = capsys.readouterr().err.strip()
    assert len(error.splitlines()) == 1 and "true class" in error and "c.csv" in error
    two_seeds = tmp_path / "seeds.csv"
    pd.concat([pd.read_csv(a), pd.read_csv(a).assign(seed=2)]).to_csv(two_seeds, index=False)
    assert main(["compare", str(two_seeds), str(b)]) == 2
    assert "seeds [1, 2]" in capsys.readouterr().err
    assert main(["compare", str(two_seeds), str(b), "--seed-a", "2"]) == 0
    assert main(["compare", str(tmp_path / "missing.csv"), str(b)]) == 2
    assert "missing.csv not found" in capsys.readouterr().err
