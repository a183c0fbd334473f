"""Metrics: a hand-computed example, agreement with scikit-learn, pooling over
folds (MEGC 2019) and folds that lack a class."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import balanced_accuracy_score, f1_score, recall_score
from sklearn.metrics import confusion_matrix as sk_confusion

from stag_model.metrics import (
    classification_metrics,
    confusion_matrix,
    mean_std_over_seeds,
    metrics_from_confusion,
    pooled_and_per_fold,
)

# 3 classes, 8 samples. Confusion (rows true, cols predicted):
#   [[2, 1, 0],     class 0: TP 2, FP 1, FN 1 -> F1 4/6, recall 2/3
#    [1, 2, 0],     class 1: TP 2, FP 1, FN 1 -> F1 4/6, recall 2/3
#    [0, 0, 2]]     class 2: TP 2, FP 0, FN 0 -> F1 1,   recall 1
Y_TRUE = [0, 0, 0, 1, 1, 1, 2, 2]
Y_PRED = [0, 0, 1, 1, 1, 0, 2, 2]


def test_hand_computed_example():
    m = classification_metrics(Y_TRUE, Y_PRED, 3, ["neg", "pos", "sur"])
    assert m["confusion"] == [[2, 1, 0], [1, 2, 0], [0, 0, 2]]
    assert m["uf1"] == pytest.approx((4 / 6 + 4 / 6 + 1) / 3)
    assert m["uar"] == pytest.approx((2 / 3 + 2 / 3 + 1) / 3)
    assert m["accuracy"] == pytest.approx(6 / 8)
    assert m["per_class"]["sur"] == {"recall": 1.0, "f1": 1.0, "support": 2}


def test_agrees_with_scikit_learn_on_random_predictions():
    rng = np.random.default_rng(0)
    t, p = rng.integers(0, 4, 200), rng.integers(0, 4, 200)
    m = classification_metrics(t, p, 4)
    assert m["uf1"] == pytest.approx(f1_score(t, p, average="macro"))
    assert m["uar"] == pytest.approx(recall_score(t, p, average="macro"))
    assert m["uar"] == pytest.approx(balanced_accuracy_score(t, p))
    assert np.array_equal(np.array(m["confusion"]), sk_confusion(t, p, labels=range(4)))


def test_fold_lacking_a_class():
    # class 2 neither present nor predicted: undefined, left out (not 0, not 1)
    m = classification_metrics([0, 0, 1], [0, 1, 1], 3)
    assert m["per_class"]["2"] == {"recall": None, "f1": None, "support": 0}
    assert m["uf1"] == pytest.approx(f1_score([0, 0, 1], [0, 1, 1], average="macro"))
    assert m["uar"] == pytest.approx(balanced_accuracy_score([0, 0, 1], [0, 1, 1]))
    # class 2 predicted but absent: F1 is 0 (a false positive), recall undefined
    m = classification_metrics([0, 0, 1], [0, 2, 1], 3)
    assert m["per_class"]["2"]["f1"] == 0.0 and m["per_class"]["2"]["recall"] is None
    assert m["uf1"] == pytest.approx(f1_score([0, 0, 1], [0, 2, 1], average="macro"))


def test_pooled_over_folds_is_not_the_mean_of_folds():
    folds = pd.DataFrame({"fold": ["a"] * 4 + ["b"] * 4, "y_true": Y_TRUE, "y_pred": Y_PRED})
    out = pooled_and_per_fold(folds, 3)
    assert out["pooled"]["uf1"] == pytest.approx(f1_score(Y_TRUE, Y_PRED, average="macro"))
    assert [f["fold"] for f in out["per_fold"]] == ["a", "b"]
    fold_a = classification_metrics(Y_TRUE[:4], Y_PRED[:4], 3)
    assert out["per_fold"][0]["uf1"] == pytest.approx(fold_a["uf1"])
    mean_of_folds = np.mean([f["uf1"] for f in out["per_fold"]])
    assert not math.isclose(mean_of_folds, out["pooled"]["uf1"])


def test_bad_input_is_named():
    with pytest.raises(ValueError, match="outside 0..2"):
        classification_metrics([0, 3], [0, 1], 3)
    with pytest.raises(ValueError, match="lack columns"):
        pooled_and_per_fold(pd.DataFrame({"y_true": [0]}), 2)


def test_mean_and_std_over_seeds():
    out = mean_std_over_seeds([{"uf1": 0.5, "uar": 0.4, "accuracy": 0.6}, {"uf1": 0.7, "uar": 0.6, "accuracy": 0.8}])
    assert out["uf1"]["mean"] == pytest.approx(0.6)
    assert out["uf1"]["std"] == pytest.approx(np.std([0.5, 0.7], ddof=1))


def test_per_dataset_figures_pool_each_datasets_predictions_per_seed():
    """A dataset's UF1 is computed on its own samples pooled over folds, per seed, then averaged."""
    from stag_model.breakdown import breakdown, breakdown_markdown, grouped_metrics

    rows = pd.DataFrame({
        "seed": [1] * 6 + [2] * 6,
        "dataset": ["a", "a", "a", "b", "b", "b"] * 2,
        "subject": ["s1", "s1", "s2", "s3", "s3", "s4"] * 2,
        "y_true": [0, 1, 1, 0, 1, 0] * 2,
        "y_pred": [0, 1, 0, 0, 1, 0] + [0, 1, 1, 1, 1, 0],
    })
    classes = ["x", "y"]
    per = grouped_metrics(rows, "dataset", classes)
    a1 = metrics_from_confusion(confusion_matrix([0, 1, 1], [0, 1, 0], 2))
    assert per["a"]["n"] == 3 and np.isclose(per["a"]["uf1"], (a1["uf1"] + 1.0) / 2)
    assert np.isclose(per["a"]["uf1_std"], abs(a1["uf1"] - 1.0) / 2)
    b2 = metrics_from_confusion(confusion_matrix([0, 1, 0], [1, 1, 0], 2))
    assert np.isclose(per["b"]["uar"], (1.0 + b2["uar"]) / 2)
    tables = breakdown(rows, classes)
    assert set(tables) == {"per_dataset", "per_subject"} and set(tables["per_subject"]) == {"s1", "s2", "s3", "s4"}
    text = breakdown_markdown(tables, worst_subjects=2)
    assert "| a | 3 |" in text and "2 of 4 subjects" in text and "| s2 | 1 | 0.500" in text
