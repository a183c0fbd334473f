"""Two prediction files side by side, sample by sample.

Reads the ``predictions.csv`` that ``stag-fit`` and ``stag evaluate`` write (one row per
(seed, sample): ``seed``, ``fold``, ``sample_id``, ``y_true``, ``y_pred``, ``p_<class>``)
and compares one seed of each on the samples both hold:

- agreement: the share of common samples given the same class, and the samples that differ;
- McNemar's test on correctness: with b = samples A classifies correctly and B does not and
  c = the reverse, the exact two-sided p = min(1, 2 P[X <= min(b, c)]) for X ~ Binomial(b + c, 1/2),
  and the chi-square statistic with continuity correction (|b - c| - 1)^2 / (b + c) (1 degree of freedom);
- the pooled metrics (UF1, UAR, accuracy; `stag_model.metrics`) of both, on the common samples and on
  each whole file.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from scipy.stats import binom, chi2

from stag_model.metrics import classification_metrics

REQUIRED_COLUMNS = ("seed", "fold", "sample_id", "y_true", "y_pred")


class PredictionFileError(ValueError):
    """A predictions file that cannot be compared; the message names the file."""


@dataclass(frozen=True)
class Predictions:
    """One seed of one predictions file."""

    path: Path
    seed: int
    table: pd.DataFrame  # one row per sample, indexed by sample_id
    class_names: tuple[str, ...]


def read_predictions(path: Path, seed: int | None = None) -> Predictions:
    """The rows of ``seed`` in the predictions file at ``path`` (its only seed when None)."""
    path = Path(path)
    if not path.is_file():
        raise PredictionFileError(f"predictions file {path} not found")
    try:
        table = pd.read_csv(path, dtype={"sample_id": str, "subject": str, "fold": str})
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise PredictionFileError(f"{path} is not a readable CSV file ({exc})") from None
    missing = [c for c in REQUIRED_COLUMNS if c not in table.columns]
    if missing:
        raise PredictionFileError(f"{path} lacks the columns {missing} of a predictions.csv "
                                  f"(written by stag-fit or stag evaluate); it has {list(table.columns)}")
    seeds = sorted(int(s) for s in table.seed.unique())
    if seed is None:
        if len(seeds) != 1:
            raise PredictionFileError(f"{path} holds seeds {seeds}; choose one (--seed-a / --seed-b)")
        seed = seeds[0]
    if seed not in seeds:
        raise PredictionFileError(f"{path} holds no seed {seed}; it holds {seeds}")
    rows = table[table.seed == seed]
    duplicated = rows.sample_id[rows.sample_id.duplicated()].tolist()
    if duplicated:
        raise PredictionFileError(f"{path}: seed {seed} lists samples more than once: {duplicated[:5]}")
    class_names = tuple(c[2:] for c in table.columns if c.startswith("p_"))
    n_classes = len(class_names) or int(max(rows.y_true.max(), rows.y_pred.max())) + 1
    class_names = class_names or tuple(str(c) for c in range(n_classes))
    return Predictions(path, seed, rows.set_index("sample_id"), class_names)


@dataclass(frozen=True)
class Comparison:
    a: Predictions
    b: Predictions
    common: list[str]  # sample ids in both, in A's order
    only_a: list[str]
    only_b: list[str]
    differing: pd.DataFrame  # sample_id, subject, true, A's and B's predicted class, who is right
    a_only_right: int  # McNemar's b
    b_only_right: int  # McNemar's c
    mcnemar_p: float  # exact, two-sided
    mcnemar_chi2: float  # with continuity correction; 0 when b + c = 0
    metrics: dict[str, dict]  # {"A common", "B common", "A file", "B file"}: classification_metrics

    @property
    def agreement(self) -> float:
        return 1.0 - len(self.differing) / len(self.common) if self.common else float("nan")


def mcnemar(a_only_right: int, b_only_right: int) -> tuple[float, float]:
    """(exact two-sided p, continuity-corrected chi-square) of McNemar's test for the discordant counts."""
    n = a_only_right + b_only_right
    if n == 0:
        return 1.0, 0.0
    p = min(1.0, 2.0 * float(binom.cdf(min(a_only_right, b_only_right), n, 0.5)))
    return p, (abs(a_only_right - b_only_right) - 1) ** 2 / n


def compare_predictions(a: Predictions, b: Predictions) -> Comparison:
    """Compare ``a`` and ``b`` on their common samples; they must share class names and true classes."""
    if a.class_names != b.class_names:
        raise PredictionFileError(f"{a.path} predicts classes {list(a.class_names)} but {b.path} predicts "
                                  f"{list(b.class_names)}; only predictions of one class scheme compare")
    common = [s for s in a.table.index if s in b.table.index]
    if not common:
        raise PredictionFileError(f"{a.path} (seed {a.seed}) and {b.path} (seed {b.seed}) share no sample id")
    ta, tb = a.table.loc[common], b.table.loc[common]
    clash = ta.index[ta.y_true.to_numpy() != tb.y_true.to_numpy()].tolist()
    if clash:
        s = clash[0]
        raise PredictionFileError(f"{a.path} and {b.path} disagree on the true class of {len(clash)} sample(s), "
                                  f"e.g. {s}: {int(ta.y_true[s])} against {int(tb.y_true[s])}")
    right_a, right_b = ta.y_pred.to_numpy() == ta.y_true.to_numpy(), tb.y_pred.to_numpy() == tb.y_true.to_numpy()
    differ = ta.y_pred.to_numpy() != tb.y_pred.to_numpy()
    names = a.class_names
    differing = pd.DataFrame({
        "sample_id": ta.index[differ],
        "subject": ta.subject[differ].to_numpy() if "subject" in ta else "",
        "true": [names[int(c)] for c in ta.y_true[differ]],
        "a": [names[int(c)] for c in ta.y_pred[differ]],
        "b": [names[int(c)] for c in tb.y_pred[differ]],
        "right": ["A" if x else ("B" if y else "neither") for x, y in zip(right_a[differ], right_b[differ])],
    })
    b_count, c_count = int((right_a & ~right_b).sum()), int((~right_a & right_b).sum())
    p, statistic = mcnemar(b_count, c_count)
    k = len(names)
    metrics = {
        "A common": classification_metrics(ta.y_true, ta.y_pred, k, names),
        "B common": classification_metrics(tb.y_true, tb.y_pred, k, names),
        "A file": classification_metrics(a.table.y_true, a.table.y_pred, k, names),
        "B file": classification_metrics(b.table.y_true, b.table.y_pred, k, names),
    }
    return Comparison(a, b, common, [s for s in a.table.index if s not in b.table.index],
                      [s for s in b.table.index if s not in a.table.index], differing, b_count, c_count, p,
                      float(statistic), metrics)


def comparison_text(c: Comparison, show: int | None = None) -> str:
    """The comparison for people: sizes, agreement, McNemar, metrics, then up to ``show`` differing samples."""
    lines = [f"A  {c.a.path} (seed {c.a.seed}): {len(c.a.table)} samples",
             f"B  {c.b.path} (seed {c.b.seed}): {len(c.b.table)} samples",
             f"common samples {len(c.common)} (only in A: {len(c.only_a)}, only in B: {len(c.only_b)})",
             f"agreement {c.agreement:.4f}: {len(c.common) - len(c.differing)} of {len(c.common)} predicted alike, "
             f"{len(c.differing)} differ",
             f"McNemar: right only in A {c.a_only_right}, right only in B {c.b_only_right}: exact p = "
             f"{c.mcnemar_p:.4g} (chi2 {c.mcnemar_chi2:.3f} with continuity correction, 1 dof, "
             f"p = {float(chi2.sf(c.mcnemar_chi2, 1)):.4g})", "",
             f"{'metric (pooled)':<16} {'A common':>9} {'B common':>9} {'A file':>9} {'B file':>9}"]
    for key in ("uf1", "uar", "accuracy"):
        lines.append(f"{key.upper():<16} " + " ".join(f"{c.metrics[m][key]:9.4f}" for m in
                                                   ("A common", "B common", "A file", "B file")))
    if len(c.differing):
        shown = c.differing if show is None else c.differing.head(show)
        lines += ["", f"samples that differ ({len(c.differing)}" + (f", first {len(shown)}" if len(shown) <
                                                                        len(c.differing) else "") + "):",
                  shown.to_string(index=False)]
    return "\n".join(lines)
