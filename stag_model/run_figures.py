"""The figures of a run's folder (``stag_model.report.write_run``), each titled with what it shows.

    confusion.png   pooled confusion matrix, summed over seeds
    curves.png      training loss and accuracy per epoch, one thin line per (seed, fold) and their mean
                    in bold; validation UF1 where an inner validation split was used. No test-fold figure
                    per epoch exists to draw (``stag_model.training_log``).
    explanation.png an image model's (TSFmicro, MEGANet) input saliency per input role, mean over test
                    samples and folds, beside the mean input it explains
    attention.png   STAG's mean ROI attention (dots, colour bar) and last-layer E-GAT edge attention
                    (lines) drawn on the stores' mean face: the aligned onset face, or the apex face of
                    a store that has one and no onset face (the composite); without either, on a blank
                    square with the ROI layout, and the title says so.
"""
from __future__ import annotations

import re
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.patheffects as effects  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

from schemas.store_spec import ONSET_FACE, ROI_BOXES  # noqa: E402
from stag_model.data import StoreSamples  # noqa: E402

APEX_FACE = "apex_face"  # the composite's face array (where its store has one)
OUTLINE = [effects.withStroke(linewidth=2.2, foreground="black")]  # white text legible on any face
DPI = 130
RING_RADIUS = 0.8  # ROI centres on a ring of this fraction of the half-size, when no box is usable


def _save(fig, path: Path) -> None:
    fig.savefig(path, dpi=DPI, bbox_inches="tight", pad_inches=0.08)
    plt.close(fig)


def confusion_png(cm: np.ndarray, class_names: tuple[str, ...], title: str, path: Path) -> None:
    """Counts in each cell; rows true classes, columns predicted."""
    fig, ax = plt.subplots(figsize=(1.2 * len(class_names) + 2, 1.2 * len(class_names) + 1.5))
    ax.imshow(cm, cmap="Blues")
    for (i, j), v in np.ndenumerate(cm):
        ax.text(j, i, str(v), ha="center", va="center", color="white" if v > cm.max() / 2 else "black")
    ax.set_xticks(range(len(class_names)), class_names, rotation=30, ha="right")
    ax.set_yticks(range(len(class_names)), class_names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title, fontsize=9)
    _save(fig, path)


def curves_png(results: dict, title: str, path: Path) -> bool:
    """Training curves of every (seed, fold) of ``results`` ({seed: [FoldResult]}); False (nothing
    written) when no fold recorded any epoch (``stag evaluate``)."""
    folds = [r for rs in results.values() for r in rs if r.train_loss]
    if not folds:
        return False
    panels = [("train_loss", "training loss"), ("train_accuracy", "training accuracy")]
    if any(r.validation_uf1 for r in folds):
        panels.append(("validation_uf1", "validation UF1 (inner split of training subjects)"))
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.4), squeeze=False)
    for ax, (name, label) in zip(axes[0], panels):
        series = [getattr(r, name) for r in folds if getattr(r, name)]
        for values in series:
            ax.plot(range(1, len(values) + 1), values, color="tab:blue", alpha=0.25, lw=0.8)
        width = min(len(v) for v in series)
        ax.plot(range(1, width + 1), np.mean([v[:width] for v in series], 0), color="tab:blue", lw=2.2,
                label=f"mean of {len(series)} folds")
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_title(label, fontsize=9)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle(title, fontsize=9)
    _save(fig, path)
    return True


def _mean_face(samples: StoreSamples) -> tuple[np.ndarray | None, str]:
    """The first store's mean face and its kind: the aligned onset face, else the apex face (the
    composite's, where its store has one), else (None, "")."""
    reader, slots = samples.readers[0], samples.slots[0]
    for name, kind in ((ONSET_FACE, "mean aligned onset face"), (APEX_FACE, "mean apex face")):
        try:
            face = reader.column(name, slots).astype(np.float32).mean(0)
        except KeyError:  # a store without this array
            continue
        if face.max() > 0:
            return face, kind
    return None, ""


def canonical_face(samples: StoreSamples) -> tuple[np.ndarray | None, np.ndarray, tuple[int, int], str]:
    """The stores' mean face (None if they hold none), ROI centres (R, 2) in its pixels, its (H, W)
    and what the face is. Grid ROIs sit at their cell centres."""
    reader, slots = samples.readers[0], samples.slots[0]
    h, w = reader.metadata.layout.height, reader.metadata.layout.width
    face, kind = _mean_face(samples)
    if face is not None and face.shape != (h, w):  # a face of another size than the flow: its pixels
        h, w = face.shape
    if samples.graph.grid:
        g = int(round(np.sqrt(len(samples.graph.roi_names))))
        cells = [re.fullmatch(r"cell_r(\d+)_c(\d+)", n).groups() for n in samples.graph.roi_names]
        centres = np.array([((int(c) + 0.5) * w / g, (int(r) + 0.5) * h / g) for r, c in cells])
    else:
        boxes = reader.column(ROI_BOXES, slots).astype(np.float32).mean(0)  # (R, 4) x0 y0 x1 y1
        scale = np.array([w / reader.metadata.layout.width, h / reader.metadata.layout.height])
        centres = np.stack([(boxes[:, 0] + boxes[:, 2]) / 2, (boxes[:, 1] + boxes[:, 3]) / 2], 1) * scale
        if not np.isfinite(centres).all() or np.ptp(centres, 0).max() == 0:  # no usable boxes: a ring layout
            angle = 2 * np.pi * np.arange(len(centres)) / len(centres)
            centres = np.stack([w / 2 * (1 + RING_RADIUS * np.sin(angle)), h / 2 * (1 - RING_RADIUS * np.cos(angle))], 1)
    return face, centres, (h, w), kind


def attention_png(samples: StoreSamples, results: dict, title: str, path: Path) -> bool:
    """STAG's attention on the face; False (nothing written) for models without attention."""
    folds = [r for rs in results.values() for r in rs if "rois" in r.attention]
    if not folds:
        return False
    rois = np.mean([r.attention["rois"] for r in folds], 0)  # (R,)
    edges = np.mean([r.attention["edges"] for r in folds], 0)  # (E,)
    face, centres, (h, w), kind = canonical_face(samples)
    fig, ax = plt.subplots(figsize=(5.2, 5.0))
    if face is not None:
        ax.imshow(face, cmap="gray", extent=(0, w, h, 0))
    else:
        ax.set_facecolor("0.35")
    ax.set_xlim(0, w)
    ax.set_ylim(h, 0)
    span = lambda x: (x - x.min()) / max(float(np.ptp(x)), 1e-12)  # noqa: E731  (0..1 over this run's range)
    for (i, j), a in zip(samples.graph.edge_index, span(edges)):
        ax.plot(*centres[[i, j]].T, color="tab:orange", lw=0.5 + 6 * a, alpha=0.4 + 0.5 * a)
    dots = ax.scatter(*centres.T, s=30 + 370 * span(rois), c=rois, cmap="viridis", edgecolors="white", zorder=3)
    for name, (x, y) in zip(samples.graph.roi_names, centres):
        ax.text(x, y, name.replace("_", "\n"), fontsize=6, ha="center", va="center", color="white", zorder=4,
                path_effects=OUTLINE)
    fig.colorbar(dots, ax=ax, fraction=0.046, pad=0.02, label="ROI attention (mean over test samples)")
    behind = f"on the {kind}" if face is not None else "(the store holds no face image: ROI layout only)"
    ax.set_title(f"{title}\nROI attention (dots) and last-layer E-GAT edge attention (lines) {behind};\n"
                 "mean over test samples and folds; sizes and widths span this run's range", fontsize=8)
    ax.set_xticks([])
    ax.set_yticks([])
    _save(fig, path)
    return True


def explanation_png(results: dict, inputs: tuple, title: str, path: Path) -> bool:
    """An image model's mean input saliency (``saliency:<role>`` of each fold's attention) per role, titled
    with the store array the role read (substitutions named); False (nothing written) without any."""
    folds = [r for rs in results.values() for r in rs if any(k.startswith("saliency:") for k in r.attention)]
    if not folds:
        return False
    read = {i.role: i for i in inputs}
    roles = [k.split(":", 1)[1] for k in folds[0].attention if k.startswith("saliency:")]
    fig, axes = plt.subplots(1, len(roles), figsize=(4.2 * len(roles), 4.4), squeeze=False)
    for ax, role in zip(axes[0], roles):
        mean = np.mean([r.attention[f"saliency:{role}"] for r in folds], 0)
        side = int(round(np.sqrt(mean.size)))
        shown = ax.imshow(mean.reshape(side, side), cmap="magma")
        what = read[role].array + (" (substituted)" if read[role].substitution else "")
        ax.set_title(f"{role} <- {what}", fontsize=8)
        ax.set_xticks([])
        ax.set_yticks([])
        fig.colorbar(shown, ax=ax, fraction=0.046, pad=0.02)
    fig.suptitle(f"{title}\ninput saliency |d logit(predicted) / d input|, mean over test samples and folds", fontsize=8)
    _save(fig, path)
    return True
