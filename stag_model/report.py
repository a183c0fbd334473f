"""What a stag-fit run leaves in its output folder.

    config.json            resolved configs, stores, protocol, seeds, whether subject-independent
    predictions.csv        one row per (seed, sample): fold, subject, true and predicted class, probabilities
    megc_log_seed<S>.txt   per held-out fold: predicted and ground-truth label lists (MEGC 2019 LOSO log layout)
    metrics.json           per seed: pooled and per-fold metrics; over seeds: mean and std
    confusion.png          pooled confusion matrix (summed over seeds)
    attention.png          STAG: mean ROI and edge attention drawn on the stores' mean aligned face
    checkpoints/seed<S>/<fold>.pt   {"state_dict", "metadata"}: loads with torch.load(weights_only=True);
                           the metadata records the stores' flow units and sizes (``input``)
    report.md              a short human summary

``stag evaluate`` writes the same files (no checkpoints) for checkpoints evaluated without training.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import torch  # noqa: E402

from schemas.store_spec import ONSET_FACE, ROI_BOXES  # noqa: E402
from stag_model.data import StoreSamples  # noqa: E402
from stag_model.metrics import mean_std_over_seeds, pooled_and_per_fold  # noqa: E402
from stag_model.protocols import SUBJECT_INDEPENDENT  # noqa: E402
from stag_model.train import FoldResult  # noqa: E402


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


def _confusion_png(cm: np.ndarray, class_names: tuple[str, ...], title: str, path: Path) -> None:
    fig, ax = plt.subplots(figsize=(1.2 * len(class_names) + 2, 1.2 * len(class_names) + 1.5))
    ax.imshow(cm, cmap="Blues")
    for (i, j), v in np.ndenumerate(cm):
        ax.text(j, i, str(v), ha="center", va="center", color="white" if v > cm.max() / 2 else "black")
    ax.set_xticks(range(len(class_names)), class_names, rotation=30, ha="right")
    ax.set_yticks(range(len(class_names)), class_names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def canonical_face(samples: StoreSamples) -> tuple[np.ndarray | None, np.ndarray, tuple[int, int]]:
    """Mean aligned onset face (None if the stores hold none), ROI centres (R, 2) in
    its pixels, and its (H, W). Grid ROIs sit at their cell centres."""
    reader, slots = samples.readers[0], samples.slots[0]
    h, w = reader.metadata.layout.height, reader.metadata.layout.width
    face = reader.column(ONSET_FACE, slots).astype(np.float32).mean(0)
    face = face if face.max() > 0 else None
    if samples.graph.grid:
        g = int(round(np.sqrt(len(samples.graph.roi_names))))
        cells = [re.fullmatch(r"cell_r(\d+)_c(\d+)", n).groups() for n in samples.graph.roi_names]
        centres = np.array([((int(c) + 0.5) * w / g, (int(r) + 0.5) * h / g) for r, c in cells])
    else:
        boxes = reader.column(ROI_BOXES, slots).astype(np.float32).mean(0)  # (R, 4) x0 y0 x1 y1
        centres = np.stack([(boxes[:, 0] + boxes[:, 2]) / 2, (boxes[:, 1] + boxes[:, 3]) / 2], 1)
        if not np.isfinite(centres).all() or np.ptp(centres, 0).max() == 0:  # no usable boxes: a ring layout
            angle = 2 * np.pi * np.arange(len(centres)) / len(centres)
            centres = np.stack([w / 2 * (1 + 0.8 * np.sin(angle)), h / 2 * (1 - 0.8 * np.cos(angle))], 1)
    return face, centres, (h, w)


def _attention_png(samples: StoreSamples, results: dict[int, list[FoldResult]], path: Path) -> bool:
    folds = [r for rs in results.values() for r in rs if "rois" in r.attention]
    if not folds:
        return False
    rois = np.mean([r.attention["rois"] for r in folds], 0)  # (R,)
    edges = np.mean([r.attention["edges"] for r in folds], 0)  # (E,)
    face, centres, (h, w) = canonical_face(samples)
    fig, ax = plt.subplots(figsize=(5, 5.6))
    if face is not None:
        ax.imshow(face, cmap="gray", extent=(0, w, h, 0))
    ax.set_xlim(0, w)
    ax.set_ylim(h, 0)
    span = lambda x: (x - x.min()) / max(float(np.ptp(x)), 1e-12)  # noqa: E731  (0..1 over this run's range)
    for (i, j), a in zip(samples.graph.edge_index, span(edges)):
        ax.plot(*centres[[i, j]].T, color="tab:orange", lw=0.5 + 6 * a, alpha=0.4 + 0.5 * a)
    sc = ax.scatter(*centres.T, s=30 + 370 * span(rois), c=rois, cmap="viridis", edgecolors="white", zorder=3)
    for name, (x, y) in zip(samples.graph.roi_names, centres):
        ax.text(x, y, name.replace("_", "\n"), fontsize=5, ha="center", va="center", color="white", zorder=4,
                bbox={"boxstyle": "round,pad=0.1", "fc": "black", "alpha": 0.35, "lw": 0})
    fig.colorbar(sc, ax=ax, fraction=0.04, label="ROI attention (mean over test samples)")
    ax.set_title("STAG: ROI attention (dots) and last-layer E-GAT edge attention (lines),\n"
                 "mean over test samples; sizes and widths span this run's range", fontsize=8)
    ax.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=130)
    plt.close(fig)
    return True


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
    }
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2))
    cm = np.sum([np.array(m["pooled"]["confusion"]) for m in per_seed.values()], 0)
    _confusion_png(cm, samples.class_names, f"{metrics['model']} {protocol}, pooled over folds and {len(per_seed)} seed(s)",
                   out / "confusion.png")
    has_attention = _attention_png(samples, results, out / "attention.png")
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
    (out / "report.md").write_text(markdown_report(metrics, run_info, has_attention, save_checkpoints))
    return metrics


def markdown_report(metrics: dict, run_info: dict, has_attention: bool, checkpoints: bool = True) -> str:
    s = metrics["summary"]
    fmt = lambda k: f"{s[k]['mean']:.3f} ± {s[k]['std']:.3f}"  # noqa: E731
    warning = "" if metrics["subject_independent"] else (
        "\n> **Subject-dependent protocol**: clips of one subject are in both training and test folds; these figures "
        "are not comparable with LOSO / subject-independent results.\n")
    per_class = metrics["per_seed"][str(metrics["seeds"][0])]["pooled"]["per_class"]
    rows = "\n".join(f"| {c} | {v['support']} | {v['recall'] if v['recall'] is None else round(v['recall'], 3)} | "
                     f"{v['f1'] if v['f1'] is None else round(v['f1'], 3)} |" for c, v in per_class.items())
    command = run_info.get("command", "stag-fit")
    if command == "stag evaluate":
        cost = (f"Evaluated {run_info.get('checkpoint_origin', 'checkpoints')} (trained elsewhere, not here); "
                f"{metrics['seconds_per_fold']:.1f} s per fold.")
    else:
        cost = (f"Trained {metrics['training'] or 'fold by fold'}; {metrics['seconds_per_fold']:.1f} s per fold, "
                f"{metrics['seconds_per_epoch']:.2f} s per epoch.")
    return f"""# {command}: {metrics['model']} on {', '.join(run_info['stores'])}

Protocol **{metrics['protocol']}** ({metrics['n_folds']} folds, {metrics['n_samples']} samples, {metrics['n_subjects']} subjects),
scheme `{run_info['scheme']}`, seeds {metrics['seeds']}, {run_info['train']['epochs']} epochs per fold
(model selection: {run_info['train']['validation']}; the test fold is never used to choose anything).
{warning}
| metric (pooled over folds, MEGC 2019) | mean ± std over seeds |
|---|---|
| UF1 | {fmt('uf1')} |
| UAR | {fmt('uar')} |
| accuracy | {fmt('accuracy')} |

Per class (seed {metrics['seeds'][0]}):

| class | support | recall | F1 |
|---|---|---|---|
{rows}

{cost}
Files: `predictions.csv`, `megc_log_seed*.txt`, `metrics.json`, `confusion.png`{', `attention.png`' if has_attention else ''}{', `checkpoints/`' if checkpoints else ''}.
"""
