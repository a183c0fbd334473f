"""Design runs for STAG on the MEGC 2019 composite: 5-fold GroupKFold by
subject, fixed epochs, 2 seeds (4 for the later variants), pooled UF1 / UAR
per variant.

STAG's defaults (schemas/model_config.py) were chosen from these runs, never
from the LOSO test folds of `benchmarks/composite_loso.py`. The two protocols
use the same 442 samples, so the choice is not independent of the LOSO figure
the way a nested search would be; every variant tried is listed here and in
``benchmarks/results/composite_design.json`` so the size of the search is on
record (the README quotes it next to the LOSO result).

    python benchmarks/composite_design.py --store stores/megc2019.zarr --variants streams_do5,s5_g0
    python benchmarks/composite_design.py --store stores/megc2019.zarr --list

The folds and seeds of a variant train through ``stag_model.train.run_protocol`` (on a
CPU one fold per core in worker processes); entries merge into the results file under a
lock, so variants may also run in separate processes.
"""
from __future__ import annotations

import argparse
import fcntl
import json
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from schemas.model_config import DataConfig, ModelConfig, StstnetConfig, TrainConfig
from stag_model.data import make_source, open_samples
from stag_model.metrics import pooled_and_per_fold
from stag_model.protocols import make_folds
from stag_model.train import run_protocol

RESULTS = Path(__file__).parent / "results" / "composite_design.json"
SCHEME = "megc2019-3"
SPLITS = 5
SEEDS = (1, 2)
STREAMS = {"frame_encoder": "shallow_streams", "frame_pool_grid": 5}
# name -> model, epochs, ModelConfig / StstnetConfig overrides, TrainConfig overrides, DataConfig overrides.
# Written in the order they were tried; overrides are relative to the ModelConfig defaults of the first run
# (frame_encoder "cnn", frame_dropout 0.2, focal_gamma 2, no test-time flip), spelled out so that later
# changes of the defaults do not change what a name means.
FIRST_DEFAULTS = {"frame_encoder": "cnn", "frame_pool_grid": 4, "frame_dropout": 0.2, "focal_gamma": 2.0,
                  "class_weighting": "inverse_frequency", "frame_stream_order": "conv_bn_relu"}
FIRST_TRAIN_DEFAULTS = {"test_time_flip": False}
FIRST_DATA_DEFAULTS = {"shift_pixels": 0}
VARIANTS: dict[str, dict] = {
    "ststnet": dict(model="ststnet", epochs=40),
    "base": dict(model="stag", epochs=25),
    "base_ep40": dict(model="stag", epochs=40),
    "streams": dict(model="stag", epochs=25, model_over=STREAMS),
    "streams_g0": dict(model="stag", epochs=25, model_over={**STREAMS, "focal_gamma": 0.0}),
    "streams_do5": dict(model="stag", epochs=25, model_over={**STREAMS, "frame_dropout": 0.5}),
    "s5_tta": dict(model="stag", epochs=25, model_over={**STREAMS, "frame_dropout": 0.5},
                   train_over={"test_time_flip": True}),
    "s5_do4": dict(model="stag", epochs=25, model_over={**STREAMS, "frame_dropout": 0.5, "dropout": 0.4}),
    "s5_d32": dict(model="stag", epochs=25, model_over={**STREAMS, "frame_dropout": 0.5, "d_model": 32}),
    "s5_ep40": dict(model="stag", epochs=40, model_over={**STREAMS, "frame_dropout": 0.5}),
    "s5_wd1e-2": dict(model="stag", epochs=25, model_over={**STREAMS, "frame_dropout": 0.5},
                      train_over={"weight_decay": 0.01}),
    "s5_g0": dict(model="stag", epochs=25, model_over={**STREAMS, "frame_dropout": 0.5, "focal_gamma": 0.0}),
    "s5_g1": dict(model="stag", epochs=25, model_over={**STREAMS, "frame_dropout": 0.5, "focal_gamma": 1.0}),
    "s5_g0_no_spatial": dict(model="stag", epochs=25,
                             model_over={**STREAMS, "frame_dropout": 0.5, "focal_gamma": 0.0, "spatial_branch": False}),
    "s5_mix02": dict(model="stag", epochs=25, model_over={**STREAMS, "frame_dropout": 0.5},
                     train_over={"mixup_alpha": 0.2}),
    "s5_mix04_tta": dict(model="stag", epochs=25, model_over={**STREAMS, "frame_dropout": 0.5},
                         train_over={"mixup_alpha": 0.4, "test_time_flip": True}),
    "s5_g0_tta": dict(model="stag", epochs=25, model_over={**STREAMS, "frame_dropout": 0.5, "focal_gamma": 0.0},
                      train_over={"test_time_flip": True}),
    "s5_g0_tta_ens3": dict(model="stag", epochs=25, model_over={**STREAMS, "frame_dropout": 0.5, "focal_gamma": 0.0},
                           train_over={"test_time_flip": True, "ensemble_size": 3}),
}
# From here on the fit loop draws each epoch's order from its own generator (train.epoch_orders) and flips from
# another, so "split_rng" reruns s5_g0_tta's spec under the new random streams: the reference for what follows.
CHOSEN = {**STREAMS, "frame_dropout": 0.5, "focal_gamma": 0.0}
VARIANTS.update({
    "split_rng": dict(model="stag", epochs=25, model_over=CHOSEN, train_over={"test_time_flip": True}),
    "ema98": dict(model="stag", epochs=25, model_over=CHOSEN, train_over={"test_time_flip": True, "ema_decay": 0.98}),
    "ema99": dict(model="stag", epochs=25, model_over=CHOSEN, train_over={"test_time_flip": True, "ema_decay": 0.99}),
    "ls1": dict(model="stag", epochs=25, model_over={**CHOSEN, "label_smoothing": 0.1},
                train_over={"test_time_flip": True}),
    "ema98_ls1": dict(model="stag", epochs=25, model_over={**CHOSEN, "label_smoothing": 0.1},
                      train_over={"test_time_flip": True, "ema_decay": 0.98}),
    "lr2e-3": dict(model="stag", epochs=25, model_over=CHOSEN, train_over={"test_time_flip": True, "learning_rate": 2e-3}),
    "shift1": dict(model="stag", epochs=25, model_over=CHOSEN, train_over={"test_time_flip": True},
                   data_over={"shift_pixels": 1}),
    "shift2": dict(model="stag", epochs=25, model_over=CHOSEN, train_over={"test_time_flip": True},
                   data_over={"shift_pixels": 2}),
    "shift2_ep40": dict(model="stag", epochs=40, model_over=CHOSEN, train_over={"test_time_flip": True},
                        data_over={"shift_pixels": 2}),
    "shift3": dict(model="stag", epochs=25, model_over=CHOSEN, train_over={"test_time_flip": True},
                   data_over={"shift_pixels": 3}),
})
# From here on shift_pixels = 1 is the default (DataConfig); "now" is the defaults at that point
NOW = dict(model="stag", epochs=25, model_over=CHOSEN, train_over={"test_time_flip": True},
           data_over={"shift_pixels": 1})
VARIANTS.update({
    "now_cw_none": {**NOW, "model_over": {**CHOSEN, "class_weighting": "none"}},
    "now_bs16": {**NOW, "train_over": {"test_time_flip": True, "batch_size": 16}},
    "now_wide_streams": {**NOW, "model_over": {**CHOSEN, "frame_streams": (6, 10, 16)}},
    "now_roi_shift1": {**NOW, "data_over": {"shift_pixels": 1, "shift_roi_pixels": 1}},
})
# From here on class_weighting "none" is the default too; "cur" is the defaults at that point (= now_cw_none)
CURRENT = {**CHOSEN, "class_weighting": "none"}
CUR = {**NOW, "model_over": CURRENT}
VARIANTS.update({
    "cur_cw_sqrt": {**CUR, "model_over": {**CURRENT, "class_weighting": "sqrt_inverse_frequency"}},
    "cur_g1": {**CUR, "model_over": {**CURRENT, "focal_gamma": 1.0}},
    "cur_ep30": {**CUR, "epochs": 30},
    "cur_ema98": {**CUR, "train_over": {"test_time_flip": True, "ema_decay": 0.98}},
    "cur_ens3": {**CUR, "train_over": {"test_time_flip": True, "ensemble_size": 3}},
    "cur_ep20": {**CUR, "epochs": 20},
    "cur_rot5": {**CUR, "data_over": {"shift_pixels": 1, "rotate_degrees": 5.0}},
    "cur_rot10": {**CUR, "data_over": {"shift_pixels": 1, "rotate_degrees": 10.0}},
    # each frame's flow minus its spatial median (DataConfig.centre_flow): the composite's images are min-max
    # normalised per image, so their no-motion level differs per image (median u from -0.24 to 0.26, 5th to
    # 95th percentile, against a per-image std of 0.13)
    "cur_centre": {**CUR, "data_over": {"shift_pixels": 1, "centre_flow": True}},
})
# The order of conv, batch norm and ReLU in the frame encoder's shallow streams (ModelConfig.frame_stream_order):
# STSTNet's released code runs conv -> ReLU -> BN; the defaults so far ran conv -> BN -> ReLU. From here on the
# folds train through run_protocol (one fold per core), so "cur_bn_relu" reruns the defaults beside the other order.
VARIANTS.update({
    "cur_bn_relu": {**CUR, "model_over": {**CURRENT, "frame_stream_order": "conv_bn_relu"}},
    "cur_relu_bn": {**CUR, "model_over": {**CURRENT, "frame_stream_order": "conv_relu_bn"}},
})
# Ground-truth AUs of the CASME II and SAMM samples (278 of 442) from their coding sheets (the megc2019 adapter's
# au_sheets; store stores/megc2019_aus.zarr = benchmarks._stores.composite_store(name="megc2019_aus",
# au_sheets=True)): the AU co-occurrence prior is no longer empty, and an auxiliary loss predicting the AUs
# from the fused vector (ModelConfig.au_auxiliary_weight, removed after these runs: it did not help, so the
# aus_aux* variants cannot be rerun)
VARIANTS.update({
    "aus_prior": CUR,
    "aus_aux05": {**CUR, "model_over": {**CURRENT, "au_auxiliary_weight": 0.5}},
    "aus_no_prior": {**CUR, "model_over": {**CURRENT, "au_prior": False}},
    "aus_aux05_no_prior": {**CUR, "model_over": {**CURRENT, "au_prior": False, "au_auxiliary_weight": 0.5}},
    "aus_aux1_no_prior": {**CUR, "model_over": {**CURRENT, "au_prior": False, "au_auxiliary_weight": 1.0}},
})


# Options that did not help and were removed later (TrainConfig.ensemble_size and ema_decay; DataConfig
# rotate_degrees, shift_roi_pixels and centre_flow): the variants that used them keep their recorded
# results in benchmarks/results/composite_design.json and docs/experiments.md, but cannot be rerun.


def run_variant(store: Path, name: str, seeds: tuple[int, ...], variants: dict[str, dict] = VARIANTS) -> dict:
    v = variants[name]
    data = DataConfig(scheme=SCHEME, **{**FIRST_DATA_DEFAULTS, **v.get("data_over", {})})
    samples = open_samples([store], data)
    source = make_source(samples, data, torch.device("cpu"))
    folds = make_folds("groupkfold", samples.subjects, samples.labels, samples.datasets, n_splits=SPLITS)
    stag_over = {**FIRST_DEFAULTS, **v.get("model_over", {})} if v["model"] == "stag" else {}
    configs = {"train": TrainConfig(model=v["model"], epochs=v["epochs"], seeds=seeds, device="cpu",
                                    **{**FIRST_TRAIN_DEFAULTS, **v.get("train_over", {})}),
               "model": ModelConfig(**stag_over),
               "ststnet": StstnetConfig(**(v.get("model_over", {}) if v["model"] == "ststnet" else {})), "data": data}
    per_seed, started = {}, time.perf_counter()
    by_seed, path = run_protocol(samples, source, folds, configs, torch.device("cpu"), log=lambda _: None)
    for seed, results in by_seed.items():
        rows = [{"fold": r.fold, "y_true": int(samples.labels[p]), "y_pred": int(pr.argmax())}
                for r in results for p, pr in zip(r.test_positions.tolist(), r.probabilities)]
        per_seed[str(seed)] = pooled_and_per_fold(pd.DataFrame(rows), len(samples.class_names),
                                                  samples.class_names)["pooled"]
    return {
        "uf1": float(np.mean([m["uf1"] for m in per_seed.values()])),
        "uar": float(np.mean([m["uar"] for m in per_seed.values()])),
        "per_seed": {k: {"uf1": m["uf1"], "uar": m["uar"]} for k, m in per_seed.items()},
        "seconds": time.perf_counter() - started, "spec": v, "training": path, "store": str(store),
        "finished": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }


def main(variants: dict[str, dict] = VARIANTS, results: Path = RESULTS,
         default_store: Path = Path("stores/megc2019.zarr"), description: str = __doc__) -> None:
    p = argparse.ArgumentParser(description=description.split("\n\n")[0])
    p.add_argument("--store", type=Path, default=default_store)
    p.add_argument("--variants", default="", help="comma-separated names (see --list)")
    p.add_argument("--seeds", default=",".join(map(str, SEEDS)))
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--list", action="store_true", help="print the variants and their recorded scores")
    p.add_argument("--out", type=Path, default=results)
    args = p.parse_args()
    recorded = json.loads(args.out.read_text())["variants"] if args.out.exists() else {}
    if args.list or not args.variants:
        for name, spec in variants.items():
            r = recorded.get(name)
            score = f"UF1 {r['uf1']:.4f} UAR {r['uar']:.4f}" if r else "not run"
            print(f"{name:<22} {score:<28} {json.dumps(spec)}")
        return
    torch.set_num_threads(args.threads)
    seeds = tuple(int(s) for s in args.seeds.split(","))
    for name in args.variants.split(","):
        if name not in variants:
            raise SystemExit(f"unknown variant {name!r}; known: {', '.join(variants)}")
        entry = run_variant(args.store, name, seeds, variants)
        print(f"{name}: UF1 {entry['uf1']:.4f} UAR {entry['uar']:.4f} ({entry['seconds']:.0f} s)", flush=True)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        with open(args.out.with_suffix(".lock"), "w") as lock:  # other processes run other variants
            fcntl.flock(lock, fcntl.LOCK_EX)
            doc = json.loads(args.out.read_text()) if args.out.exists() else {}
            doc.update(protocol=f"GroupKFold({SPLITS}) by subject, fixed epochs, pooled UF1/UAR, mean over seeds",
                       scheme=SCHEME, seeds="per variant: see per_seed")
            doc.setdefault("store", str(args.store))  # the store of the first runs; later entries name theirs
            doc.setdefault("variants", {})[name] = entry
            args.out.write_text(json.dumps(doc, indent=2))


if __name__ == "__main__":
    main()
