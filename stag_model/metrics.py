"""Classification metrics, MEGC 2019 definitions.

UF1 (unweighted F1) is the mean over classes of 2TP / (2TP + FP + FN); UAR
(unweighted average recall) is the mean over classes of TP / N_c. In MEGC 2019
both are computed once on the predictions pooled over every LOSO fold, with TP,
FP and FN summed over folds; `pooled_and_per_fold` does that and also reports
each fold alone.

A class that a fold lacks (N_c = 0) has no recall; a class with TP = FP = FN
= 0 has no F1. Such undefined per-class values are NaN and are left out of the
means (the convention of scikit-learn's ``f1_score(average="macro")`` without
``labels`` and of ``balanced_accuracy_score``), never counted as 0 or 1.
"""
from __future__ import annotations

import math
import warnings
from typing import Sequence

import numpy as np
import pandas as pd


def confusion_matrix(y_true: Sequence[int], y_pred: Sequence[int], n_classes: int) -> np.ndarray:
    """(C, C) counts, rows = true class, columns = predicted class."""
    t, p = np.asarray(y_true, dtype=np.int64), np.asarray(y_pred, dtype=np.int64)
    if t.shape != p.shape:
        raise ValueError(f"y_true has {t.size} entries but y_pred has {p.size}")
    for name, a in (("y_true", t), ("y_pred", p)):
        if a.size and (a.min() < 0 or a.max() >= n_classes):
            raise ValueError(f"{name} holds a class outside 0..{n_classes - 1}: {sorted(set(a.tolist()))}")
    cm = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(cm, (t, p), 1)
    return cm


def _nanmean(values: np.ndarray) -> float:
    finite = values[~np.isnan(values)]
    return float(finite.mean()) if finite.size else float("nan")


def metrics_from_confusion(cm: np.ndarray, class_names: Sequence[str] | None = None) -> dict:
    """UF1, UAR, accuracy and per-class recall / F1 / support from a confusion matrix."""
    cm = np.asarray(cm, dtype=np.float64)
    tp = np.diag(cm)
    support = cm.sum(1)  # N_c: true samples of class c
    predicted = cm.sum(0)
    fp, fn = predicted - tp, support - tp
    with np.errstate(invalid="ignore", divide="ignore"):
        recall = np.where(support > 0, tp / support, np.nan)
        f1_denominator = 2 * tp + fp + fn
        f1 = np.where(f1_denominator > 0, 2 * tp / f1_denominator, np.nan)
    names = list(class_names) if class_names is not None else [str(c) for c in range(cm.shape[0])]
    total = cm.sum()
    return {
        "uf1": _nanmean(f1),
        "uar": _nanmean(recall),
        "accuracy": float(tp.sum() / total) if total else float("nan"),
        "n": int(total),
        "per_class": {
            name: {"recall": _json_float(r), "f1": _json_float(f), "support": int(s)}
            for name, r, f, s in zip(names, recall, f1, support)
        },
        "confusion": cm.astype(np.int64).tolist(),
    }


def _json_float(x: float) -> float | None:
    return None if math.isnan(x) else float(x)


def classification_metrics(
    y_true: Sequence[int], y_pred: Sequence[int], n_classes: int, class_names: Sequence[str] | None = None
) -> dict:
    """Metrics of one set of predictions (see `metrics_from_confusion`)."""
    return metrics_from_confusion(confusion_matrix(y_true, y_pred, n_classes), class_names)


def pooled_and_per_fold(predictions: pd.DataFrame, n_classes: int, class_names: Sequence[str] | None = None) -> dict:
    """``predictions`` has columns fold, y_true, y_pred. Returns the pooled
    metrics (MEGC 2019: one confusion matrix summed over folds) and a list of
    per-fold metrics (undefined classes of a fold left out, see module doc)."""
    missing = {"fold", "y_true", "y_pred"} - set(predictions.columns)
    if missing:
        raise ValueError(f"predictions lack columns {sorted(missing)}; have {list(predictions.columns)}")
    pooled = classification_metrics(predictions.y_true, predictions.y_pred, n_classes, class_names)
    per_fold = []
    for fold, part in predictions.groupby("fold", sort=True):
        m = classification_metrics(part.y_true, part.y_pred, n_classes, class_names)
        per_fold.append({"fold": fold, "n": m["n"], "uf1": m["uf1"], "uar": m["uar"], "accuracy": m["accuracy"]})
    return {"pooled": pooled, "per_fold": per_fold}


def mean_std_over_seeds(per_seed: Sequence[dict], keys: Sequence[str] = ("uf1", "uar", "accuracy")) -> dict:
    """{key: {"mean", "std", "values"}} over seeds (std with ddof=1, 0 for one seed)."""
    out = {}
    for key in keys:
        values = np.array([m[key] for m in per_seed], dtype=np.float64)
        if np.isnan(values).any():
            warnings.warn(f"{key} is undefined for some seed; it is left out of the mean", stacklevel=2)
        finite = values[~np.isnan(values)]
        out[key] = {
            "mean": float(finite.mean()) if finite.size else None,
            "std": float(finite.std(ddof=1)) if finite.size > 1 else 0.0,
            "values": [_json_float(v) for v in values],
        }
    return out
