"""stag-fit: train and evaluate STAG (or STSTNet, TSFmicro, MEGANet) straight from feature stores.

    stag-fit --store casme2.zarr [--store samm.zarr] --protocol loso --scheme casme2-5 \\
             [--model stag|ststnet|tsfmicro|meganet] [--device auto|cpu|cuda] [--epochs N] [--seeds 1,2,3]
             [--out runs/NAME]

Shows a progress bar over every fold's epochs (seed, fold i/n, epoch, training loss and
accuracy; ``stag_cli.progress.FitProgress``) with one line per finished fold above it, then the
metric table; writes the outputs listed in stag_model/report.py into --out, and each fold's
training curves as TensorBoard event files in ``--out``/tensorboard while it trains
(``tensorboard --logdir runs/``). ``--quiet``: only the metric table. Every default comes from
schemas/model_config.py; ``--model-config`` / ``--train-config`` take a JSON file of overrides
(e.g. ``{"cross_attention": false}`` for an ablation) for the chosen model's section. A model with a
published training set-up (TSFmicro: AdamW, lr 8e-4, exponential decay) takes it as its TrainConfig
defaults (stag_model.registry.recipe_defaults); --train-config and flags override them. The models
are those of stag_model.registry; the inputs each reads, and any substitution a store forces (the
composite has no onset frame), are printed in the header and named in every report.
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import torch

from schemas.model_config import DataConfig, TrainConfig
from stag_cli.parsing import OneLineParser
from stag_model.allocator import keep_freed_memory
from stag_model.data import make_source, open_samples
from stag_model.protocols import SUBJECT_INDEPENDENT, make_folds
from stag_model.registry import MODELS, default_configs, entry, inputs_line, prepare_samples, recipe_defaults
from stag_model.report import seed_spread, write_run
from stag_model.train import resolve_device, run_protocol
from stag_model.training_log import EVENTS_FOLDER, TrainingLog


def _seeds(text: str) -> tuple[int, ...]:
    try:
        seeds = tuple(int(s) for s in text.split(",") if s.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"--seeds takes integers separated by commas, got {text!r}") from None
    if not seeds:
        raise argparse.ArgumentTypeError(f"--seeds needs at least one integer, got {text!r}")
    return seeds


def _json_file(text: str) -> dict:
    path = Path(text)
    if not path.is_file():
        raise argparse.ArgumentTypeError(f"config file {path} not found")
    try:
        overrides = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise argparse.ArgumentTypeError(f"config file {path} is not valid JSON: {exc.msg} at line {exc.lineno} "
                                         f"column {exc.colno}") from None
    if not isinstance(overrides, dict):
        raise argparse.ArgumentTypeError(f"config file {path} must hold a JSON object of field: value overrides, "
                                         f"not a {type(overrides).__name__}")
    return overrides


def _folds(text: str) -> int:
    try:
        k = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--folds takes an integer, got {text!r}") from None
    if k < 2:
        raise argparse.ArgumentTypeError(f"--folds must be at least 2 (k of k-fold), got {k}")
    return k


def parser() -> argparse.ArgumentParser:
    p = OneLineParser(prog="stag-fit", description=__doc__.split("\n\n")[0])
    p.add_argument("--store", action="append", required=True, help="feature store (repeat for several)")
    p.add_argument("--protocol", choices=sorted(SUBJECT_INDEPENDENT), default="loso")
    p.add_argument("--scheme", required=True, help="class scheme name in the store(s)")
    p.add_argument("--model", choices=list(MODELS), default="stag")
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    p.add_argument("--epochs", type=int, help=f"fixed epochs per fold (default {TrainConfig().epochs}; the README's "
                                              "composite command gives the epochs of each recorded result)")
    p.add_argument("--seeds", type=_seeds, default=(1,), help="comma-separated, e.g. 1,2,3")
    p.add_argument("--folds", type=_folds, default=5, help="k for groupkfold / stratified (at least 2)")
    p.add_argument("--validation", choices=["none", "inner_subjects"], help="model selection (default: none, fixed epochs)")
    p.add_argument("--batch-size", type=int)
    p.add_argument("--threads", type=int, help="torch CPU threads")
    p.add_argument("--parallel", choices=["auto", "vmap", "processes", "none"],
                   help="how folds train: all together (vmap, GPU), one per CPU core (processes), or one after "
                        "another (none, the reference); default auto")
    p.add_argument("--model-config", type=_json_file, default={}, help="JSON file of overrides of the chosen model's "
                   "config (ModelConfig, StstnetConfig, TsfmicroConfig or MeganetConfig)")
    p.add_argument("--train-config", type=_json_file, default={}, help="JSON file of TrainConfig overrides")
    p.add_argument("--data-config", type=_json_file, default={}, help="JSON file of DataConfig overrides")
    p.add_argument("--out", type=Path, help="output folder, new or empty (default: a new runs/<model>-<protocol>-"
                                            "<scheme>-<UTC time>)")
    p.add_argument("--overwrite", action="store_true", help="replace the content of a non-empty --out folder")
    p.add_argument("--no-checkpoints", action="store_true", help="do not save fold checkpoints")
    p.add_argument("--quiet", action="store_true", help="no progress bar and no per-fold lines")
    return p


def resolve_configs(args: argparse.Namespace) -> dict:
    """TrainConfig, every model's config section and DataConfig from defaults, the chosen model's training
    recipe, JSON overrides and flags."""
    flags = {k: v for k, v in {"epochs": args.epochs, "validation": args.validation, "batch_size": args.batch_size,
                               "threads": args.threads, "parallel": args.parallel}.items() if v is not None}
    chosen = entry(args.model)
    sections = {**default_configs(), chosen.section: chosen.config_class(**args.model_config)}
    recipe = recipe_defaults(args.model, sections[chosen.section])
    train = TrainConfig(**{**recipe, **args.train_config, **flags, "model": args.model, "seeds": args.seeds,
                           "device": args.device})
    return {"train": train, **sections, "data": DataConfig(**{**args.data_config, "scheme": args.scheme})}


def output_folder(args: argparse.Namespace, train: TrainConfig) -> Path:
    """The run's folder, empty: ``--out`` (refused when it holds files, unless ``--overwrite``, which
    clears it), or a new folder named after the run and the UTC time."""
    if args.out is None:
        stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
        out = Path("runs") / f"{train.model}-{args.protocol}-{args.scheme}-{stamp}"
        while out.exists():
            out = out.with_name(out.name + "-1")
        return out
    out = args.out
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out} is a file, not a folder")
    if out.is_dir() and any(out.iterdir()):
        if not args.overwrite:
            raise ValueError(f"output folder {out} is not empty (an earlier run's files); choose another --out, "
                             "or add --overwrite to replace its content")
        shutil.rmtree(out)
    return out


def _message(exc: BaseException) -> str:
    return str(exc.args[0]) if isinstance(exc, KeyError) and exc.args else str(exc)


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        configs = resolve_configs(args)
    except ValueError as exc:  # pydantic validation errors name the field
        print(f"stag-fit: invalid configuration: {exc}", file=sys.stderr)
        return 2
    try:
        return fit(args, configs, argv)
    except (FileNotFoundError, KeyError, ValueError, RuntimeError) as exc:  # damaged stores, refused inputs
        print(f"stag-fit: error: {_message(exc)}", file=sys.stderr)
        return 2


def fit(args: argparse.Namespace, configs: dict, argv: list[str] | None) -> int:
    """The run: stores to folds to results, written to the run's folder."""
    train = configs["train"]
    keep_freed_memory()  # the same activations every step: reuse their memory (stag_model.allocator)
    if train.threads:
        torch.set_num_threads(train.threads)
    out = output_folder(args, train)
    device = resolve_device(train.device)
    samples = prepare_samples(open_samples(args.store, configs["data"]), configs)
    folds = make_folds(args.protocol, samples.subjects, samples.labels, samples.datasets, n_splits=args.folds,
                       seed=train.seeds[0])
    source = make_source(samples, configs["data"], device)
    dependent = "" if SUBJECT_INDEPENDENT[args.protocol] else "  [SUBJECT-DEPENDENT: clips of a subject on both sides]"
    print(f"stag-fit: {train.model} | {len(samples)} samples, {len(set(samples.subjects))} subjects, "
          f"{len(samples.class_names)} classes {list(samples.class_names)} | {args.protocol}: {len(folds)} folds | "
          f"{type(source).__name__} on {device} | seeds {list(train.seeds)} x {train.epochs} epochs{dependent}")
    if samples.inputs:
        print(f"stag-fit: {train.model} inputs: {inputs_line(samples)}")
    started = time.perf_counter()
    results, path = _train(args, samples, source, folds, configs, device, out)
    run_info = {"stores": [str(p) for p in samples.paths], "protocol": args.protocol, "scheme": args.scheme,
                "device": str(device), "training": path, "argv": sys.argv[1:] if argv is None else argv,
                "inputs": [r.as_json() for r in samples.inputs],
                **{k: v.model_dump(mode="json") for k, v in configs.items()}}
    metrics = write_run(out, samples, results, run_info, save_checkpoints=not args.no_checkpoints)
    s = metrics["summary"]
    print(f"\n{'metric':<10} {'mean':>7} {'std':>7}   per seed")
    for key in ("uf1", "uar", "accuracy"):
        values = " ".join(f"{v:.3f}" for v in s[key]["values"])
        print(f"{key.upper():<10} {s[key]['mean']:7.3f} {seed_spread(s[key]):>7}   {values}")
    print(f"{time.perf_counter() - started:.0f} s total, {metrics['seconds_per_epoch']:.2f} s per epoch; outputs in {out} "
          f"(report.md; training curves: tensorboard --logdir {out / EVENTS_FOLDER})")
    return 0


def _train(args: argparse.Namespace, samples, source, folds, configs: dict, device: torch.device, out: Path):
    """``run_protocol`` with the progress bar (unless ``--quiet``) and the run's TensorBoard files."""
    train = configs["train"]
    if args.quiet:
        with TrainingLog(out / EVENTS_FOLDER) as monitor:
            return run_protocol(samples, source, folds, configs, device, log=lambda _: None, monitor=monitor)
    from stag_cli.progress import FitProgress

    total = len(folds) * len(train.seeds) * train.epochs
    with FitProgress(f"{train.model} {args.protocol}", total) as progress, \
            TrainingLog(out / EVENTS_FOLDER, listener=progress) as monitor:
        return run_protocol(samples, source, folds, configs, device, log=progress.line, monitor=monitor)


if __name__ == "__main__":
    raise SystemExit(main())
