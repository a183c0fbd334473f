"""The four models of issue 25 (STAG, STSTNet, TSFmicro, MEGANet) on one store: cost and results.

    python benchmarks/seed_models.py cost --store stores/megc2019_phases.zarr [--folds 2] [--epochs 3]
    python benchmarks/seed_models.py collect --run tsfmicro=runs/seed_models/tsfmicro-loso [--run ...]
    python benchmarks/seed_models.py collect --run meganet-loso=runs/seed_models/meganet-loso,runs/meganet-seed23
    python benchmarks/seed_models.py collect --name phases_loso --run stag-loso-k2-seeds=runs/a,runs/b [--run ...]

``cost`` trains each model on the first ``--folds`` LOSO folds of the store for ``--epochs`` epochs, one
fold after another in this process with one torch thread (the reference loop, what a worker process of
``stag-fit``'s CPU path runs), and records seconds per epoch (a fold's wall time, set-up and test
prediction included, over its epochs), the parameters, and the estimated LOSO run: s/epoch x the
model's fixed epochs x the store's folds, for one process and for the machine's cores (one fold per
core), per seed. ``collect`` reads finished stag-fit runs (their metrics.json and config.json) into the
same results file: pooled and per-dataset UF1 / UAR per seed, epochs, protocol, inputs (substitutions)
and measured cost, per-class figures per seed and per-subject figures. Both write
benchmarks/results/seed_models.json (the parts they measure; the rest kept); benchmarks/report.py renders it as
BENCHMARKS.md section 10. ``collect --name N`` writes benchmarks/results/N.json instead (issue 24's LOSO runs of
STAG and STSTNet on the two-phase stores: ``phases_loso``, docs/experiments.md gives the command).
"""
from __future__ import annotations

import argparse
import json
import os
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._common import RESULTS_DIR, LoadSampler, write_results  # noqa: E402
from schemas.model_config import DataConfig, TrainConfig  # noqa: E402
from stag_features.store import StoreReader  # noqa: E402
from stag_model.data import make_source, open_samples  # noqa: E402
from stag_model.protocols import GuardedLabels, make_folds  # noqa: E402
from stag_model.registry import MODELS, default_configs, prepare_samples, recipe_defaults  # noqa: E402
from stag_model.train import build_model, fit_fold  # noqa: E402

NAME = "seed_models"
SCHEME = "megc2019-3"
# fixed epochs per model for the composite runs: STAG's and STSTNet's of benchmarks/composite_loso.py; TSFmicro's
# and MEGANet's chosen here (TSFmicro's recipe says 50: the estimate at 50 is recorded too)
EPOCHS = {"stag": 25, "ststnet": 40, "tsfmicro": 25, "meganet": 40}


# published figures beside ours: (where, UF1, UAR or None, how the figure's epoch was chosen)
PUBLISHED = {
    "stag": [],  # the STAG abstract (arXiv 2606.28083) gives no figure stag can check
    "ststnet": [{"source": "Liong et al. 2019 (MEGC 2019), composite LOSO", "dataset": "pooled", "uf1": 0.7353,
                 "uar": 0.7605, "epoch_choice": "not said; the released code trains 800 epochs and keeps the last "
                 "(its released weights give 0.7209 / 0.7250 under `stag evaluate`)"}],
    "tsfmicro": [
        {"source": "TSFmicro Table 4, CASME II 3-class (the paper's classes), LOSO", "dataset": "casme2",
         "uf1": 0.9430, "uar": None, "accuracy": 0.9484,
         "epoch_choice": "its own code keeps each test subject's best epoch (test labels choose the epoch)"},
        {"source": "TSFmicro Table 5, SAMM 3-class (the paper's classes), LOSO", "dataset": "samm",
         "uf1": 0.8567, "uar": None, "accuracy": 0.9097,
         "epoch_choice": "its own code keeps each test subject's best epoch (test labels choose the epoch)"}],
    "meganet": [],  # abstract only; its accuracies (e.g. 50.00% / 46.15% on CASME II) suggest one small split, not LOSO
}


def _configs(model: str, epochs: int, seeds: tuple[int, ...] = (1,)) -> dict:
    train = TrainConfig(**{**recipe_defaults(model), "model": model, "epochs": epochs, "seeds": seeds,
                           "device": "cpu", "parallel": "none", "threads": 1})
    return {"train": train, **default_configs(), "data": DataConfig(scheme=SCHEME)}


def measure_cost(store: Path, folds: int, epochs: int) -> dict:
    """Seconds per epoch of each model on the first ``folds`` LOSO folds (module docstring)."""
    import torch

    torch.set_num_threads(1)
    cores = len(os.sched_getaffinity(0))
    out = {}
    for model in MODELS:
        configs = _configs(model, epochs)
        samples = prepare_samples(open_samples([store], configs["data"]), configs)
        all_folds = make_folds("loso", samples.subjects, samples.labels, samples.datasets)
        source = make_source(samples, configs["data"], torch.device("cpu"))
        per_fold = []
        for fold in all_folds[:folds]:
            labels = GuardedLabels(samples.labels, fold.train, fold.name)
            result = fit_fold(samples, source, fold, labels, configs, 1, torch.device("cpu"))
            per_fold.append(result.seconds / epochs)
        epoch_s = sum(per_fold) / len(per_fold)
        net = build_model(configs["train"], configs["model"], configs["ststnet"], samples, configs)
        budgets = {str(e): {"one_process_min": epoch_s * e * len(all_folds) / 60,
                            "per_core_min": epoch_s * e * len(all_folds) / 60 / cores}
                   for e in sorted({EPOCHS[model], recipe_defaults(model).get("epochs", EPOCHS[model])})}
        out[model] = {"parameters": sum(p.numel() for p in net.parameters()), "epoch_s": epoch_s,
                      "epoch_s_per_fold": per_fold, "folds_measured": len(per_fold), "epochs_measured": epochs,
                      "loso_folds": len(all_folds), "fixed_epochs": EPOCHS[model], "loso_run_estimate": budgets,
                      "inputs": [r.as_json() for r in samples.inputs], "training_samples": int(len(all_folds[0].train)),
                      "batch_size": configs["train"].batch_size, "cores": cores}
        print(f"{model}: {epoch_s:.2f} s/epoch ({out[model]['parameters']} parameters); LOSO estimate {budgets}",
              flush=True)
    return out


def _minutes_per_seed(run: dict) -> float:
    """A run's wall minutes per seed from its measured time per fold: folds x s/fold / folds at a time
    (the worker processes of the training path; 1 fold by fold)."""
    match = re.search(r"(\d+) at a time", run.get("training") or "")
    at_a_time = int(match.group(1)) if match and run["training"].startswith("processes") else 1
    return run["seconds_per_fold"] * run["n_folds"] / at_a_time / 60


def _per_class_by_seed(table, classes: list[str]) -> dict[str, dict]:
    """Recall, F1 and support per class of each seed's predictions, pooled over its folds."""
    from stag_model.metrics import pooled_and_per_fold

    return {str(seed): pooled_and_per_fold(table[table.seed == seed], len(classes), classes)["pooled"]["per_class"]
            for seed in sorted(table.seed.unique())}


def _one_run(folder: Path) -> dict:
    """The figures of one finished stag-fit run folder."""
    import pandas as pd

    metrics = json.loads((folder / "metrics.json").read_text())
    config = json.loads((folder / "config.json").read_text())
    return {
        "run": str(folder), "model": metrics["model"], "protocol": metrics["protocol"],
        "n_folds": metrics["n_folds"], "epochs": config["train"]["epochs"], "seeds": metrics["seeds"],
        "stores": config["stores"], "argv": config.get("argv"), "training": metrics.get("training"),
        "summary": {k: metrics["summary"][k] for k in ("uf1", "uar", "accuracy")},
        "per_dataset": metrics.get("per_dataset"), "per_subject": metrics.get("per_subject"),
        "per_class_by_seed": _per_class_by_seed(pd.read_csv(folder / "predictions.csv"), metrics["classes"]),
        "inputs": metrics.get("inputs", []),
        "seconds_per_epoch": metrics["seconds_per_epoch"], "seconds_per_fold": metrics["seconds_per_fold"],
        "store_config_hashes": [StoreReader(p).metadata.config_hash for p in config["stores"]],
    }


def _merged_runs(folders: list[Path]) -> dict:
    """Runs of one design whose seeds were trained by several stag-fit commands, as one entry: their
    predictions pooled per seed (stag_model.metrics, stag_model.breakdown, as stag-fit's own report does)."""
    import pandas as pd

    from stag_model.breakdown import breakdown
    from stag_model.metrics import mean_std_over_seeds, pooled_and_per_fold

    parts = [_one_run(folder) for folder in folders]
    first = parts[0]
    for part in parts[1:]:
        for key in ("model", "protocol", "n_folds", "epochs", "store_config_hashes"):
            if part[key] != first[key]:
                raise SystemExit(f"{part['run']}: {key} {part[key]} differs from {first['run']}'s {first[key]}")
    seeds = [seed for part in parts for seed in part["seeds"]]
    if len(set(seeds)) != len(seeds):
        raise SystemExit(f"{', '.join(map(str, folders))}: a seed is trained twice ({seeds})")
    table = pd.concat([pd.read_csv(folder / "predictions.csv") for folder in folders], ignore_index=True)
    classes = json.loads((folders[0] / "metrics.json").read_text())["classes"]
    pooled = [pooled_and_per_fold(table[table.seed == seed], len(classes), classes)["pooled"] for seed in seeds]
    n_seeds = [len(part["seeds"]) for part in parts]

    def weighted(key: str) -> float:
        """A cost figure over the runs, weighted by the seeds each trained."""
        return sum(part[key] * n for part, n in zip(parts, n_seeds)) / sum(n_seeds)

    return {**first, "run": " + ".join(str(f) for f in folders), "seeds": seeds,
            "argv": [part["argv"] for part in parts], "training": first["training"],
            "summary": mean_std_over_seeds(pooled), **breakdown(table, classes),
            "per_class_by_seed": {seed: f for part in parts for seed, f in part["per_class_by_seed"].items()},
            "seconds_per_epoch": weighted("seconds_per_epoch"), "seconds_per_fold": weighted("seconds_per_fold"),
            "minutes_per_seed_by_run": {part["run"]: _minutes_per_seed(part) for part in parts}}


def collect(runs: dict[str, list[Path]]) -> dict:
    """The figures of finished stag-fit runs, by label (several folders: one design's seeds, merged)."""
    out = {label: _one_run(folders[0]) if len(folders) == 1 else _merged_runs(folders)
           for label, folders in runs.items()}
    return {label: {**run, "minutes_per_seed": _minutes_per_seed(run)} for label, run in out.items()}


def _previous(name: str) -> dict:
    path = RESULTS_DIR / f"{name}.json"
    return json.loads(path.read_text())["figures"] if path.is_file() else {}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="command", required=True)
    c = sub.add_parser("cost")
    c.add_argument("--store", type=Path, required=True)
    c.add_argument("--folds", type=int, default=2)
    c.add_argument("--epochs", type=int, default=3)
    r = sub.add_parser("collect")
    r.add_argument("--run", action="append", required=True,
                   help="label=stag-fit output folder[,folder...] (several: one design's seeds, merged)")
    r.add_argument("--name", default=NAME, help=f"results file benchmarks/results/NAME.json (default {NAME})")
    args = p.parse_args()
    name = getattr(args, "name", NAME)
    figures = {**_previous(name), **({"published": PUBLISHED} if name == NAME else {})}
    with LoadSampler() as load:
        if args.command == "cost":
            figures["cost"] = {"store": str(args.store), "models": measure_cost(args.store, args.folds, args.epochs)}
        else:
            runs = {k: [Path(p) for p in v.split(",")] for k, v in (item.split("=", 1) for item in args.run)}
            figures["runs"] = {**figures.get("runs", {}), **collect(runs)}
    write_results(name, figures, load, notes=["one torch thread per process; the machine was shared with other "
                                              "training runs (see the load average)"])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
