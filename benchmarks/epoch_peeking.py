"""What choosing the epoch on the test subject is worth: LOSO where each fold keeps the epoch that scores
best on its own test subject, the protocol behind most published MEGC 2019 composite figures, measured on
our own model so that it can be set beside our honest (fixed-epoch) LOSO.

    python benchmarks/epoch_peeking.py --store stores/megc2019.zarr --seeds 1,2,3 --honest composite_loso:stag
    python benchmarks/epoch_peeking.py --store stores/megc2019_phases.zarr --honest phases_loso:stag-loso-k2-seeds

Every fold trains exactly as ``stag-fit --protocol loso`` trains it (``stag_model.train.fit_fold``: the
same fold seeds, orders, normaliser and fixed epochs), except that its validation set *is* its test
subject: after every epoch the test subject's UF1 is computed and the best epoch's weights are kept
(ties: the earliest). That is a deliberate leak, made here only to measure it: the label guard is given
the test positions, which stag-fit never does. Published code that reports the best epoch per test
subject (HTNet's, TSFmicro's) selects on accuracy; on one subject's handful of samples the two orderings
rarely differ. Results merge into benchmarks/results/epoch_peeking.json, keyed by ``--label``, beside the
honest figure of the same design named by ``--honest`` (e.g. ``composite_loso:stag``). Folds run one per
core in worker processes, one torch thread each (``stag_model.fold_processes`` cannot run them: its
workers guard the test labels, which is the point).
"""
from __future__ import annotations

import argparse
import json
import multiprocessing
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._common import RESULTS_DIR, LoadSampler, write_results  # noqa: E402
from schemas.model_config import DataConfig, ModelConfig, StstnetConfig, TrainConfig  # noqa: E402
from stag_model.data import make_source, open_samples  # noqa: E402
from stag_model.metrics import mean_std_over_seeds, pooled_and_per_fold  # noqa: E402
from stag_model.protocols import Fold, GuardedLabels, make_folds  # noqa: E402

NAME = "epoch_peeking"
SCHEME = "megc2019-3"
EPOCHS = {"stag": 25, "ststnet": 40}  # the fixed budgets of the honest runs (benchmarks/composite_loso.py)
_WORKER: dict = {}


def _start(store: str, configs: dict) -> None:
    torch.set_num_threads(1)
    samples = open_samples([store], configs["data"])
    _WORKER.update(samples=samples, configs=configs, source=make_source(samples, configs["data"], torch.device("cpu")))


def _fit_peeking(seed: int, fold: Fold) -> dict:
    """One LOSO fold whose kept epoch is the best on its own test subject."""
    from stag_model.train import fit_fold

    samples = _WORKER["samples"]
    peeking = Fold(fold.name, fold.train, fold.test, validation=fold.test)
    labels = GuardedLabels(samples.labels, np.concatenate([fold.train, fold.test]), fold.name)  # the leak
    result = fit_fold(samples, _WORKER["source"], peeking, labels, _WORKER["configs"], seed, torch.device("cpu"),
                      dense_gat=True)
    return {"seed": seed, "fold": fold.name, "positions": fold.test.tolist(),
            "predicted": result.probabilities.argmax(1).tolist(), "epoch_kept": result.metadata["epochs_kept"]}


def run(store: Path, model: str, seeds: tuple[int, ...], workers: int) -> dict:
    data = DataConfig(scheme=SCHEME)
    samples = open_samples([store], data)
    folds = make_folds("loso", samples.subjects, samples.labels, samples.datasets)
    configs = {"train": TrainConfig(model=model, epochs=EPOCHS[model], seeds=seeds, device="cpu"),
               "model": ModelConfig(), "ststnet": StstnetConfig(), "data": data}
    started, rows, kept = time.perf_counter(), [], []
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(workers, mp_context=context, initializer=_start, initargs=(str(store), configs)) as pool:
        for i, out in enumerate(pool.map(_fit_peeking, *zip(*[(s, f) for s in seeds for f in folds])), 1):
            kept.append(out["epoch_kept"])
            rows += [{"seed": out["seed"], "fold": out["fold"], "y_true": int(samples.labels[p]), "y_pred": y}
                     for p, y in zip(out["positions"], out["predicted"])]
            print(f"{i}/{len(seeds) * len(folds)} seed {out['seed']} fold {out['fold']}: epoch {out['epoch_kept']} "
                  f"kept ({time.perf_counter() - started:.0f} s)", flush=True)
    table = pd.DataFrame(rows)
    pooled = [pooled_and_per_fold(table[table.seed == s], len(samples.class_names), samples.class_names)["pooled"]
              for s in seeds]
    kept_epochs = np.asarray(kept)
    return {"store": str(store), "model": model, "epochs": EPOCHS[model], "seeds": list(seeds),
            "summary": mean_std_over_seeds(pooled),
            "epochs_kept": {"mean": float(kept_epochs.mean()),
                            "last_epoch_share": float((kept_epochs == EPOCHS[model]).mean())},
            "seconds": time.perf_counter() - started}


def honest_figure(reference: str) -> dict:
    """The fixed-epoch figure named ``FILE:KEY``: entry KEY of benchmarks/results/FILE.json (``models`` of
    composite_loso, ``figures.runs`` of phases_loso)."""
    name, key = reference.split(":", 1)
    doc = json.loads((RESULTS_DIR / f"{name}.json").read_text())
    entries = doc.get("models") or doc.get("figures", {}).get("runs", {})
    if key not in entries:
        raise SystemExit(f"{name}.json has no entry {key!r}; it has: {', '.join(entries)}")
    return {"source": reference, "summary": entries[key]["summary"]}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--store", type=Path, required=True)
    p.add_argument("--model", choices=sorted(EPOCHS), default="stag")
    p.add_argument("--seeds", default="1,2,3")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--label", default=None, help="results key (default: the model and the store's name)")
    p.add_argument("--honest", default=None, help="FILE:KEY of the same design's fixed-epoch LOSO figure, e.g. "
                   "composite_loso:stag or phases_loso:stag-loso-k2-seeds")
    args = p.parse_args()
    seeds = tuple(int(s) for s in args.seeds.split(","))
    label = args.label or f"{args.model}-{args.store.stem}"
    path = RESULTS_DIR / f"{NAME}.json"
    figures = json.loads(path.read_text())["figures"] if path.is_file() else {}
    with LoadSampler() as load:
        entry = run(args.store, args.model, seeds, args.workers)
    entry["honest"] = honest_figure(args.honest) if args.honest else None
    figures.setdefault("runs", {})[label] = entry
    s = entry["summary"]
    print(f"{label}: best epoch per test subject UF1 {s['uf1']['mean']:.4f} ± {s['uf1']['std']:.4f}, "
          f"UAR {s['uar']['mean']:.4f} ± {s['uar']['std']:.4f}; honest: {entry['honest']}")
    write_results(NAME, figures, load, notes=["a deliberate leak for measurement: each LOSO fold keeps the epoch "
                                              "best on its own test subject; never a design choice"])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
