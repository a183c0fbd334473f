"""Pooled metrics per group of test samples: per source dataset and per subject.

MEGC 2019 reports the composite's UF1 and UAR over all 442 samples and also
over each source dataset's samples alone (CASME II, SAMM, SMIC). The figures
of a group are computed, like the pooled ones, once on the predictions of that
group's samples pooled over every fold (``stag_model.metrics``): per seed, then
mean and standard deviation over seeds (``ddof=0``: the seeds run are the
population reported).

Input: the rows of a run's ``predictions.csv`` (columns ``seed``, ``y_true``,
``y_pred`` and the grouping column, ``dataset`` or ``subject``).
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd

from stag_model.metrics import confusion_matrix, metrics_from_confusion

GROUPINGS = ("dataset", "subject")
FIGURES = ("uf1", "uar", "accuracy")


def grouped_metrics(predictions: pd.DataFrame, by: str, class_names: Sequence[str]) -> dict[str, dict]:
    """{group: {"n": samples per seed, "<figure>": mean over seeds, "<figure>_std": std over seeds}}
    for ``by`` in GROUPINGS, groups in sorted order."""
    if by not in predictions.columns:
        raise ValueError(f"predictions have no column {by!r} (columns: {list(predictions.columns)})")
    out: dict[str, dict] = {}
    for group, rows in sorted(predictions.groupby(by), key=lambda item: str(item[0])):
        per_seed = [metrics_from_confusion(confusion_matrix(r["y_true"], r["y_pred"], len(class_names)), class_names)
                    for _seed, r in rows.groupby("seed")]
        entry: dict[str, float | int] = {"n": int(len(rows) // rows["seed"].nunique())}
        for figure in FIGURES:
            values = np.array([m[figure] for m in per_seed], dtype=np.float64)
            entry[figure] = float(np.nanmean(values)) if np.isfinite(values).any() else float("nan")
            entry[f"{figure}_std"] = float(np.nanstd(values)) if np.isfinite(values).any() else float("nan")
        out[str(group)] = entry
    return out


def breakdown(predictions: pd.DataFrame, class_names: Sequence[str]) -> dict[str, dict[str, dict]]:
    """{"per_dataset": ..., "per_subject": ...} (``grouped_metrics``) for the groupings present."""
    return {f"per_{by}": grouped_metrics(predictions, by, class_names) for by in GROUPINGS if by in predictions}


def breakdown_markdown(tables: dict[str, dict[str, dict]], worst_subjects: int = 10) -> str:
    """Markdown: the per-dataset table whole, and the ``worst_subjects`` subjects of lowest accuracy
    (a subject holds a few samples, so its UF1 is noisy; accuracy and n say more)."""
    lines: list[str] = []
    datasets = tables.get("per_dataset", {})
    if len(datasets) > 1:
        lines += ["| dataset | n | UF1 | UAR | accuracy |", "|---|---:|---:|---:|---:|"]
        lines += [f"| {name} | {m['n']} | {_cell(m, 'uf1')} | {_cell(m, 'uar')} | {_cell(m, 'accuracy')} |"
                  for name, m in datasets.items()]
    subjects = tables.get("per_subject", {})
    if subjects:
        worst = sorted(subjects.items(), key=lambda item: (item[1]["accuracy"], item[0]))[:worst_subjects]
        lines += ["", f"Lowest accuracy, {len(worst)} of {len(subjects)} subjects:", "",
                  "| subject | n | accuracy | UF1 |", "|---|---:|---:|---:|"]
        lines += [f"| {name} | {m['n']} | {_cell(m, 'accuracy')} | {_cell(m, 'uf1')} |" for name, m in worst]
    return "\n".join(lines)


def _cell(entry: dict, figure: str) -> str:
    mean, std = entry[figure], entry[f"{figure}_std"]
    if not np.isfinite(mean):
        return "-"
    return f"{mean:.3f}" if not std else f"{mean:.3f} ± {std:.3f}"
