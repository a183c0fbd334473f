"""What a stag-fit run leaves in its output folder.

    config.json            resolved configs, stores, protocol, seeds, whether subject-independent
    predictions.csv        one row per (seed, sample): fold, subject, true and predicted class, probabilities
    megc_log_seed<S>.txt   per held-out fold: predicted and ground-truth label lists (MEGC 2019 LOSO log layout)
    metrics.json           per seed: pooled and per-fold metrics; over seeds: mean and std; per
                           dataset and per subject (stag_model.breakdown)
    confusion.png          pooled confusion matrix (summed over seeds)
    curves.png             training loss and accuracy per epoch and fold (validation UF1 where used)
    attention.png          STAG: mean ROI and edge attention drawn on the stores' mean face
    explanation.png        TSFmicro, MEGANet: mean input saliency of each input role
    tensorboard/           the same curves as TensorBoard event files, written while training
                           (``stag_model.training_log``; ``tensorboard --logdir runs/``)
    checkpoints/seed<S>/<fold>.pt   {"state_dict", "metadata"}: loads with torch.load(weights_only=True);
                           the metadata records the stores' flow units and sizes (``input``)
    report.md              a short human summary

``stag evaluate`` writes the same files (no checkpoints, no curves) for checkpoints evaluated without training.

``report.md`` is a list of sections (``REPORT_SECTIONS``), each a function of the run's metrics,
run information and files written (``ReportInput``) returning markdown, or "" to leave it out: a
new table (per source dataset, per subject) is one more function in that list.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
import torch

from stag_model.breakdown import breakdown, breakdown_markdown
from stag_model.data import StoreSamples
from stag_model.metrics import mean_std_over_seeds, pooled_and_per_fold
from stag_model.protocols import SUBJECT_INDEPENDENT
from stag_model.run_figures import attention_png, confusion_png, curves_png, explanation_png
from stag_model.train import FoldResult
from stag_model.training_log import EVENTS_FOLDER


def seed_spread(summary: dict) -> str:
    """A metric's standard deviation over seeds as text: with one seed there is none (``n/a``), not 0."""
    return f"{summary['std']:.3f}" if len(summary["values"]) > 1 else "n/a"


def checkpoint_name(fold: str) -> str:
    """File name (without .pt) of a fold's checkpoint: the fold name with characters other than letters,
    digits, ``_``, ``.`` and ``-`` replaced by ``_``."""
    return re.sub(r"[^A-Za-z0-9_.-]", "_", fold)


def predictions_table(samples: StoreSamples, results: dict[int, list[FoldResult]]) -> pd.DataFrame:
    """One row per (seed, test sample); labels are joined here, after training."""
    rows = []
    for seed, folds in results.items():
        for r in folds:
            for pos, probs in zip(r.test_positions.tolist(), r.probabilities):
                y_true, y_pred = int(samples.labels[pos]), int(probs.argmax())
                rows.append({
                    "seed": seed, "fold": r.fold, "sample_id": samples.sample_ids[pos], "subject": samples.subjects[pos],
                    "dataset": samples.datasets[pos], "y_true": y_true, "y_pred": y_pred,
                    "true_class": samples.class_names[y_true], "predicted_class": samples.class_names[y_pred],
                    **{f"p_{c}": float(p) for c, p in zip(samples.class_names, probs)},
                })
    return pd.DataFrame(rows)


def megc_log(table: pd.DataFrame) -> str:
    """Per fold (held-out subject) the predicted and ground-truth label lists,
    then the pooled UF1 / UAR line."""
    lines = []
    for fold, part in table.groupby("fold", sort=True):
        lines += [f"Subject: {fold}", f"Predicted    : {part.y_pred.tolist()}", f"Ground Truth : {part.y_true.tolist()}", ""]
    return "\n".join(lines)


def write_run(out: Path, samples: StoreSamples, results: dict[int, list[FoldResult]], run_info: dict,
              save_checkpoints: bool = True) -> dict:
    """Write every output of a run into ``out``; returns the metrics dict."""
    out.mkdir(parents=True, exist_ok=True)
    protocol = run_info["protocol"]
    subject_independent = SUBJECT_INDEPENDENT[protocol]
    (out / "config.json").write_text(json.dumps({**run_info, "subject_independent": subject_independent}, indent=2))
    table = predictions_table(samples, results)
    table.to_csv(out / "predictions.csv", index=False)
    n_classes = len(samples.class_names)
    per_seed = {}
    for seed, part in table.groupby("seed"):
        per_seed[int(seed)] = pooled_and_per_fold(part, n_classes, samples.class_names)
        (out / f"megc_log_seed{seed}.txt").write_text(megc_log(part))
    seconds = [r.seconds for rs in results.values() for r in rs]
    metrics = {
        "protocol": protocol, "subject_independent": subject_independent, "model": run_info["train"]["model"],
        "n_samples": len(samples), "n_subjects": int(len(set(samples.subjects))), "n_folds": len(next(iter(results.values()))),
        "classes": list(samples.class_names), "seeds": list(per_seed), "training": run_info.get("training"),
        "summary": mean_std_over_seeds([m["pooled"] for m in per_seed.values()]),
        "seconds_per_fold": float(np.mean(seconds)), "seconds_per_epoch": float(np.mean(seconds)) / run_info["train"]["epochs"],
        "per_seed": {str(k): v for k, v in per_seed.items()},
        "inputs": run_info.get("inputs", []),
        **breakdown(table, samples.class_names),  # per_dataset, per_subject: pooled per seed, mean/std
    }
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2))
    cm = np.sum([np.array(m["pooled"]["confusion"]) for m in per_seed.values()], 0)
    title = f"{metrics['model']} {protocol} on {', '.join(Path(p).name for p in run_info['stores'])}"
    confusion_png(cm, samples.class_names, f"{title}: confusion pooled over folds and {len(per_seed)} seed(s)",
                  out / "confusion.png")
    files = ["predictions.csv", "megc_log_seed*.txt", "metrics.json", "confusion.png"]
    if curves_png(results, f"{title}: training curves per fold", out / "curves.png"):
        files.append("curves.png")
    if attention_png(samples, results, title, out / "attention.png"):
        files.append("attention.png")
    if explanation_png(results, samples.inputs, title, out / "explanation.png"):
        files.append("explanation.png")
    if (out / EVENTS_FOLDER).is_dir():
        files.append(f"{EVENTS_FOLDER}/")
    if save_checkpoints:
        from stag_model.checkpoints import store_input

        given = store_input(samples)
        for seed, folds in results.items():
            folder = out / "checkpoints" / f"seed{seed}"
            folder.mkdir(parents=True, exist_ok=True)
            for r in folds:
                checkpoint = r.checkpoint()
                checkpoint["metadata"] = {**checkpoint["metadata"], "input": given}
                torch.save(checkpoint, folder / f"{checkpoint_name(r.fold)}.pt")
        files.append("checkpoints/")
    (out / "report.md").write_text(markdown_report(ReportInput(metrics, run_info, files)))
    return metrics


@dataclass(frozen=True)
class ReportInput:
    """What a report section may draw on: ``metrics`` (metrics.json), ``run_info`` (config.json) and
    the ``files`` written into the run folder."""

    metrics: dict
    run_info: dict
    files: list[str]


def _header(r: ReportInput) -> str:
    m, info = r.metrics, r.run_info
    warning = "" if m["subject_independent"] else (
        "\n> **Subject-dependent protocol**: clips of one subject are in both training and test folds; these figures "
        "are not comparable with LOSO / subject-independent results.\n")
    return (f"# {info.get('command', 'stag-fit')}: {m['model']} on {', '.join(info['stores'])}\n\n"
            f"Protocol **{m['protocol']}** ({m['n_folds']} folds, {m['n_samples']} samples, {m['n_subjects']} "
            f"subjects),\nscheme `{info['scheme']}`, seeds {m['seeds']}, {info['train']['epochs']} epochs per fold\n"
            f"(model selection: {info['train']['validation']}; the test fold is never used to choose anything).\n"
            + warning)


def _inputs(r: ReportInput) -> str:
    """What each input of the model read, and every substitution a store forced (never silent)."""
    inputs = r.run_info.get("inputs") or []
    if not inputs:
        return ""
    rows = "\n".join(f"| {i['role']} | {i['paper_input']} | `{i['array']}` | "
                     f"{('**substituted**: ' + i['substitution']) if i.get('substitution') else 'as in the paper'} |"
                     for i in inputs)
    note = ("\n> **Input substitution**: the store cannot give this model its paper's input for the roles marked "
            "above; these figures are for the substitute input, not the paper's.\n"
            if any(i.get("substitution") for i in inputs) else "")
    return f"Model inputs:\n\n| role | paper's input | store array read | |\n|---|---|---|---|\n{rows}\n{note}"


def _metric_table(r: ReportInput) -> str:
    s = r.metrics["summary"]
    spread = "mean ± std over seeds" if len(r.metrics["seeds"]) > 1 else "one seed (no spread over seeds)"
    fmt = lambda k: f"{s[k]['mean']:.3f}" + (f" ± {s[k]['std']:.3f}" if len(r.metrics["seeds"]) > 1 else "")  # noqa: E731
    return (f"| metric (pooled over folds, MEGC 2019) | {spread} |\n|---|---|\n| UF1 | {fmt('uf1')} |\n"
            f"| UAR | {fmt('uar')} |\n| accuracy | {fmt('accuracy')} |\n")


def _per_class(r: ReportInput) -> str:
    m = r.metrics
    per_class = m["per_seed"][str(m["seeds"][0])]["pooled"]["per_class"]
    rows = "\n".join(f"| {c} | {v['support']} | {v['recall'] if v['recall'] is None else round(v['recall'], 3)} | "
                     f"{v['f1'] if v['f1'] is None else round(v['f1'], 3)} |" for c, v in per_class.items())
    return f"Per class (seed {m['seeds'][0]}):\n\n| class | support | recall | F1 |\n|---|---|---|---|\n{rows}\n"


def _per_dataset_and_subject(r: ReportInput) -> str:
    """Pooled figures of each source dataset (where the run has several) and the weakest subjects."""
    text = breakdown_markdown({k: r.metrics[k] for k in ("per_dataset", "per_subject") if k in r.metrics})
    return f"Per dataset and per subject (pooled over folds per seed; mean ± std over seeds):\n\n{text}\n" if text else ""


def _curves(r: ReportInput) -> str:
    if "curves.png" not in r.files:
        return ""
    return ("Training curves (loss and accuracy on the training folds per epoch; validation where a validation split "
            "was used; no test-fold figure is recorded per epoch):\n\n![training curves](curves.png)\n\n"
            f"Every fold's curves in TensorBoard: `tensorboard --logdir {EVENTS_FOLDER}` in this folder.\n")


def _cost_and_files(r: ReportInput) -> str:
    m, info = r.metrics, r.run_info
    if info.get("command") == "stag evaluate":
        cost = (f"Evaluated {info.get('checkpoint_origin', 'checkpoints')} (trained elsewhere, not here); "
                f"{m['seconds_per_fold']:.1f} s per fold.")
    else:
        cost = (f"Trained {m['training'] or 'fold by fold'}; {m['seconds_per_fold']:.1f} s per fold, "
                f"{m['seconds_per_epoch']:.2f} s per epoch.")
    return f"{cost}\nFiles: {', '.join(f'`{name}`' for name in r.files)}.\n"


# the sections of report.md in order; a per-dataset or per-subject table goes after _per_class
REPORT_SECTIONS: list[Callable[[ReportInput], str]] = [_header, _inputs, _metric_table, _per_class, _per_dataset_and_subject,
                                                       _curves, _cost_and_files]


def markdown_report(r: ReportInput) -> str:
    """report.md: every non-empty section of ``REPORT_SECTIONS``, separated by blank lines."""
    return "\n".join(text for section in REPORT_SECTIONS if (text := section(r)))
