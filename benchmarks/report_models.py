"""Section 10 of BENCHMARKS.md: the four models of issue 25 (STAG, STSTNet, TSFmicro, MEGANet), their
cost per epoch and per LOSO run on this machine and their results on identical folds, from
``results/seed_models.json`` (``benchmarks/seed_models.py``)."""
from __future__ import annotations

from benchmarks._report_common import f, md_table

DATASETS = ("casme2", "samm", "smic")


def _mean_std(summary: dict) -> str:
    values = summary["values"]
    return f"{summary['mean']:.3f}" + (f" ± {summary['std']:.3f}" if len(values) > 1 else " (1 seed)")


def _per_dataset(run: dict, dataset: str) -> str:
    """UF1 of one source dataset (stag_model.breakdown: pooled per seed, mean and std over seeds)."""
    part = (run.get("per_dataset") or {}).get(dataset)
    if not part or part.get("uf1") is None:
        return "-"
    return f"{part['uf1']:.3f}" + (f" ± {part['uf1_std']:.3f}" if len(run["seeds"]) > 1 else "")


def _substitutions(run: dict) -> str:
    subs = [f"{i['role']} <- {i['array']}" for i in run.get("inputs", []) if i.get("substitution")]
    return "; ".join(subs) if subs else "as in the paper" if run.get("inputs") else "flow (its own input)"


def section_seed_models(doc: dict) -> list[str]:
    figures = doc["figures"]
    out: list[str] = []
    cost = figures.get("cost")
    if cost:
        rows = []
        for model, m in cost["models"].items():
            budgets = "; ".join(f"{e} epochs: {v['one_process_min']:.0f} min in one process, {v['per_core_min']:.0f} "
                                f"min on {m['cores']} cores" for e, v in m["loso_run_estimate"].items())
            rows.append([model, m["parameters"], f(m["epoch_s"]), m["folds_measured"], m["epochs_measured"], budgets])
        out += [f"Cost on `{cost['store']}` (LOSO folds, {next(iter(cost['models'].values()))['training_samples']} "
                "training samples, batches of 32, one torch thread; s/epoch = a fold's wall time with set-up and test "
                "prediction over its epochs):", "",
                *md_table(["model", "parameters", "s/epoch", "folds", "epochs", "LOSO run per seed (estimate)"], rows),
                ""]
    runs = figures.get("runs", {})
    if runs:
        rows = [[label, r["model"], f"{r['protocol']} ({r['n_folds']} folds)", r["epochs"], len(r["seeds"]),
                 _mean_std(r["summary"]["uf1"]), _mean_std(r["summary"]["uar"]),
                 *(_per_dataset(r, d) for d in DATASETS), f(r["seconds_per_epoch"]), _substitutions(r)]
                for label, r in runs.items()]
        stores = sorted({f"`{path}` (config hash {digest[:12]})" for r in runs.values()
                         for path, digest in zip(r["stores"], r.get("store_config_hashes", ["?"] * len(r["stores"])))})
        out += [f"Results on identical folds of {', '.join(stores)} (pooled over folds; mean ± std over seeds; per "
                "dataset: UF1):", "",
                *md_table(["run", "model", "protocol", "epochs", "seeds", "UF1", "UAR",
                           *(f"UF1 {d}" for d in DATASETS), "s/epoch", "inputs substituted"], rows), ""]
    published = [(m, p) for m, items in figures.get("published", {}).items() for p in items]
    if published:
        rows = [[m, p["source"], p["dataset"], f(p["uf1"], "{:.3f}"), f(p.get("uar"), "{:.3f}"), p["epoch_choice"]]
                for m, p in published]
        out += ["Published figures beside ours (not comparable with fixed-epoch figures where a test subject's "
                "labels chose its epoch):", "", *md_table(["model", "source", "dataset", "UF1", "UAR",
                                                           "how the epoch was chosen"], rows)]
    return out
