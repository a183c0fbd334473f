"""Sections 10 and 11 of BENCHMARKS.md: the four models of issue 25 (STAG, STSTNet, TSFmicro, MEGANet), their
cost per epoch and per LOSO run on this machine and their results on identical folds, from
``results/seed_models.json`` (``benchmarks/seed_models.py``); and one LOSO run per training path (fold by
fold, worker processes, vmap) against issue 21's targets, from ``results/loso_speed.json``
(``benchmarks/loso_speed.py``)."""
from __future__ import annotations

from benchmarks._report_common import f, md_table, training_path_label

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


def _minutes(run: dict) -> str:
    """Minutes per seed; for seeds merged from several runs, the range over the runs."""
    by_run = list((run.get("minutes_per_seed_by_run") or {}).values())
    if len(by_run) > 1:
        return f"{min(by_run):.1f}-{max(by_run):.1f}"
    return f(run.get("minutes_per_seed"), "{:.1f}")


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
                 *(_per_dataset(r, d) for d in DATASETS), f(r["seconds_per_epoch"]),
                 _minutes(r), _substitutions(r)]
                for label, r in runs.items()]
        stores = sorted({f"`{path}` (config hash {digest[:12]})" for r in runs.values()
                         for path, digest in zip(r["stores"], r.get("store_config_hashes", ["?"] * len(r["stores"])))})
        out += [f"Results on identical folds of {', '.join(stores)} (pooled over folds; mean ± std over seeds; per "
                "dataset: UF1):", "",
                *md_table(["run", "model", "protocol", "epochs", "seeds", "UF1", "UAR",
                           *(f"UF1 {d}" for d in DATASETS), "s/epoch", "min per seed", "inputs substituted"], rows),
                "", "s/epoch: a fold's wall time over its epochs, in its worker process; min per seed: folds x s "
                "per fold / folds trained at a time (2 worker processes), the run's wall time per seed without "
                "loading the store (a range where one design's seeds were trained by several runs). Runs that shared the 2 cores with other work cost more per epoch; docs/evaluation.md "
                "says which did.", ""]
    published = [(m, p) for m, items in figures.get("published", {}).items() for p in items]
    if published:
        rows = [[m, p["source"], p["dataset"], f(p["uf1"], "{:.3f}"), f(p.get("uar"), "{:.3f}"), p["epoch_choice"]]
                for m, p in published]
        out += ["Published figures beside ours (not comparable with fixed-epoch figures where a test subject's "
                "labels chose its epoch):", "", *md_table(["model", "source", "dataset", "UF1", "UAR",
                                                           "how the epoch was chosen"], rows)]
    return out


# issue 21's targets for one STAG / STSTNet LOSO run of the composite, 1 seed, on this machine (minutes)
LOSO_MINUTES = {"stag": 3.0, "ststnet": 1.0}


def loso_speed_targets(doc: dict) -> list[tuple[str, str, str, str]]:
    """(what, target, measured, verdict) per model: its fastest path's wall time against issue 21's target."""
    rows = []
    for model, target in LOSO_MINUTES.items():
        runs = [r for r in doc["figures"]["runs"] if r["model"] == model]
        if not runs:
            continue
        best = min(runs, key=lambda r: r["wall_s"])
        minutes = best["wall_s"] / 60
        rows.append((f"{model} LOSO of the composite, 1 seed, fastest path ({training_path_label(best)})", f"<= {target:.0f} min",
                     f"{minutes:.1f} min", "meets" if minutes <= target else "misses"))
    return rows


def section_loso_speed(doc: dict) -> list[str]:
    """Section 11: one LOSO run per model and training path (``benchmarks/loso_speed.py``)."""
    figures = doc["figures"]
    pairs = figures.get("pairs", {})
    rows = []
    for r in figures["runs"]:
        label = training_path_label(r)
        pair = pairs.get(f"{r['model']} {label}")
        load = r.get("load") or doc["load_average"]
        trained = (f"vmap: the folds' models stacked, {r['parallel_members'] or 'all'} at a time"
                   if r["path"] == "vmap" and r.get("parallel_members") is not None else r["training"])
        rows.append([r["model"], label, trained, figures["epochs"][r["model"]], r["seeds"],
                     f(r["wall_s"] / 60, "{:.1f}"), f"{pair['speed_up']:.2f}x" if pair else "1 (reference)",
                     f"{100 * pair['agreement']:.1f}%" if pair else "-", f(r["uf1"]["mean"], "{:.3f}"),
                     f(r["uar"]["mean"], "{:.3f}"), f(r["peak_tree_rss_mb"], "{:.0f}"),
                     f"{r.get('date_utc', doc['date_utc'])[:16]}, {load['during_1min_mean']:.2f} / {load['during_1min_max']:.2f}"])
    out = [f"LOSO on `{figures['store']}` (68 subjects), no checkpoints, one `stag-fit` process per run, run one after "
           "another; `--parallel none` is the fold-by-fold reference loop, `processes` one fold per CPU core in "
           "spawned workers, `vmap` the folds' models stacked and trained as one computation (`parallel_members` at a "
           "time; `vmap:0` all 68). Speed-up and agreement are against the reference run of the same model, measured in "
           "the same session.", "",
           *[f"- {c}" for c in dict.fromkeys(r.get("command", doc["command"]) for r in figures["runs"])], "",
           *md_table(["model", "path", "how it trained", "epochs", "seeds", "wall min", "speed-up",
                      "predicted alike", "UF1", "UAR", "peak RSS MB", "finished (UTC), load mean / max"], rows), "",
           "Against issue 21's targets on this machine:", "",
           *md_table(["what", "target", "measured", "verdict"], [list(t) for t in loso_speed_targets(doc)]), "",
           "`processes` draws every fold's random numbers as the reference does, so its predictions match it; vmap "
           "draws dropout masks per stacked member, so its figures are compared by UF1 / UAR (the equivalence tests in "
           "`tests/model/test_fold_parallel.py` switch dropout off and compare loss curves and predictions fold by "
           "fold). On a CPU a training step of these models is bound by the work of its kernels, not by calls: "
           "STAG's step costs about the same per sample from batches of 32 up, and a profile of STSTNet's step "
           "puts its time in convolution, max-pooling and batch-norm kernels on 3-8 channels, which grow with "
           "the samples of the batch (68 STSTNets stacked by `vmap:0` take 1.3x the fold-by-fold time). So vmap "
           "(one computation on one core's threads) cannot beat one fold per core on a CPU, and one fold per "
           "core can at best halve the time on 2 cores (the reference itself already uses 2 threads); vmap is "
           "the path for a GPU (`benchmarks/gpu_check.sh`, not run: no GPU was lent)."]
    return out
