"""Training cost on CPU: seconds per epoch and per LOSO run for STAG and
STSTNet on the MEGC 2019 composite store, and the peak memory of training
(issue 8, item 7).

Each model trains in its own process (so that its peak memory is its own):
the first ``--folds`` LOSO folds of the composite (442 samples, 68 subjects)
through ``stag_model.train.fit_fold`` with the trainer's defaults
(TrainConfig: fixed epochs, batch 32, AdamW; data in memory as stag-fit
does for a store this small). Per epoch: the time between the trainer's
end-of-epoch log lines (the first epoch also holds the fold's set-up:
normalisation statistics, model build; it is reported apart). A whole LOSO run
(68 folds) is estimated as 68 x (epochs x seconds per epoch + per-fold
set-up and prediction), from the folds measured; run all 68 with
``--folds 0`` for the measured figure. Peak memory: the summed RSS of the
process tree, sampled every 0.2 s.

    python benchmarks/training_cost.py                       # 2 folds x 40 epochs per model
    python benchmarks/training_cost.py --folds 1 --epochs 5 --models ststnet
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._common import LoadSampler, peak_rss_mb, run_tree, table, write_results  # noqa: E402

SCHEME = "megc2019-3"


def child(args: argparse.Namespace) -> int:
    """Train ``args.child`` on the first folds and print one JSON line."""
    import torch

    from schemas.model_config import DataConfig, ModelConfig, StstnetConfig, TrainConfig
    from stag_model.data import make_source, open_samples
    from stag_model.protocols import GuardedLabels, make_folds
    from stag_model.train import fit_fold

    started = time.perf_counter()
    train = TrainConfig(model=args.child, device="cpu", **({"epochs": args.epochs} if args.epochs else {}))
    data = DataConfig(scheme=SCHEME)
    samples = open_samples([args.store], data)
    device = torch.device("cpu")
    source = make_source(samples, data, device)
    folds = make_folds("loso", samples.subjects, samples.labels, samples.datasets, seed=train.seeds[0])
    chosen = folds if args.folds == 0 else folds[: args.folds]
    configs = {"train": train, "model": ModelConfig(), "ststnet": StstnetConfig(), "data": data}
    setup_s = time.perf_counter() - started
    per_fold = []
    for fold in chosen:
        marks = []
        t0 = time.perf_counter()
        fit_fold(samples, source, fold, GuardedLabels(samples.labels, fold.train, fold.name), configs,
                 train.seeds[0], device, log=lambda _m: marks.append(time.perf_counter()))
        total = time.perf_counter() - t0
        epochs = [b - a for a, b in zip(marks, marks[1:])]
        per_fold.append({"fold": fold.name, "train": len(fold.train), "test": len(fold.test), "fold_s": total,
                         "first_epoch_with_setup_s": marks[0] - t0 if marks else None,
                         "epoch_s_median": statistics.median(epochs) if epochs else None,
                         "after_last_epoch_s": t0 + total - marks[-1] if marks else None})
    epoch_s = statistics.median(f["epoch_s_median"] for f in per_fold if f["epoch_s_median"] is not None)
    overhead = statistics.fmean(f["fold_s"] - train.epochs * epoch_s for f in per_fold)
    default_epochs = TrainConfig().epochs
    try:  # the fixed budgets of the composite LOSO benchmark (helper script benchmarks/composite_loso.py)
        from benchmarks.composite_loso import EPOCHS as loso_epochs
    except Exception:  # noqa: BLE001 - optional
        loso_epochs = {}
    budget = loso_epochs.get(args.child)
    print(json.dumps({
        "model": args.child, "samples": len(samples), "subjects": len(set(samples.subjects)), "folds_total": len(folds),
        "folds_measured": len(chosen), "epochs": train.epochs, "default_epochs": default_epochs,
        "batch_size": train.batch_size, "steps_per_epoch": -(-len(chosen[0].train) // train.batch_size),
        "source": type(source).__name__, "torch_threads": torch.get_num_threads(),
        "parameters": sum(p.numel() for p in _model(samples, configs).parameters()),
        "setup_s": setup_s, "per_fold": per_fold, "epoch_s": epoch_s, "fold_overhead_s": overhead,
        "fold_s_mean": statistics.fmean(f["fold_s"] for f in per_fold),
        "loso_run_s_estimate": len(folds) * (default_epochs * epoch_s + overhead),
        "loso_run_measured": args.folds == 0, "peak_rss_mb_self": peak_rss_mb(),
        "composite_loso_epochs": budget,
        "loso_run_s_estimate_at_composite_loso_epochs": (len(folds) * (budget * epoch_s + overhead)) if budget else None,
    }), flush=True)
    return 0


def _model(samples, configs):
    from stag_model.train import build_model

    return build_model(configs["train"], configs["model"], configs["ststnet"], samples)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="*", default=["stag", "ststnet"], choices=["stag", "ststnet"])
    parser.add_argument("--folds", type=int, default=2, help="LOSO folds to run (0 = all 68)")
    parser.add_argument("--epochs", type=int, default=None, help="epochs per fold (default: TrainConfig's)")
    parser.add_argument("--store", type=Path, default=None, help="composite store (default: imported into scratch)")
    parser.add_argument("--child", choices=["stag", "ststnet"], help=argparse.SUPPRESS)
    parser.add_argument("--name", default="training_cost")
    args = parser.parse_args(argv)
    if args.child:
        return child(args)

    from benchmarks._stores import composite_store

    store, import_s = (args.store, None) if args.store else composite_store()
    rows, details = [], {}
    with LoadSampler() as load:
        for model in args.models:
            cmd = [sys.executable, __file__, "--child", model, "--store", str(store), "--folds", str(args.folds)]
            if args.epochs:
                cmd += ["--epochs", str(args.epochs)]
            print(f"training {model} ...", flush=True)
            run = run_tree(cmd)
            lines = [line for line in run.stdout.splitlines() if line.startswith("{")]
            if run.returncode != 0 or not lines:
                print(run.stdout[-2000:], run.stderr[-4000:], sep="\n")
                raise RuntimeError(f"training {model} failed")
            out = json.loads(lines[-1])
            out.update(process_wall_s=run.wall_s, peak_tree_rss_mb=run.peak_tree_rss_mb)
            details[model] = out
            rows.append({"model": model, "params": out["parameters"], "folds": out["folds_measured"],
                         "epochs": out["epochs"], "steps/epoch": out["steps_per_epoch"], "s/epoch": out["epoch_s"],
                         "fold_s": out["fold_s_mean"], "LOSO_run_s": out["loso_run_s_estimate"],
                         "LOSO_min": out["loso_run_s_estimate"] / 60, "peak_mb": out["peak_tree_rss_mb"]})
            print(f"  {model}: {out['epoch_s']:.2f} s/epoch, LOSO run ~{out['loso_run_s_estimate'] / 60:.1f} min, "
                  f"peak {run.peak_tree_rss_mb:.0f} MB", flush=True)
    print("\nTraining cost on CPU, MEGC 2019 composite (LOSO, 68 folds)")
    print(table(rows, None, "{:.2f}"))
    if "stag" in details and "ststnet" in details:
        print(f"STAG / STSTNet seconds per epoch: {details['stag']['epoch_s'] / details['ststnet']['epoch_s']:.1f}x")
    write_results(args.name, {"models": details, "rows": rows, "store": str(store), "composite_import_s": import_s},
                  load, notes=[
        "each model in its own process; first --folds LOSO folds through stag_model.train.fit_fold, TrainConfig defaults",
        "s/epoch: median time between end-of-epoch log lines; LOSO_run_s = 68 x (default epochs x s/epoch + "
        "per-fold set-up and prediction), an estimate unless --folds 0",
        "peak_mb: summed RSS of the process tree, sampled every 0.2 s",
    ])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
