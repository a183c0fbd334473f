"""``stag evaluate``: per-fold checkpoints evaluated on the folds they were trained for.

    stag evaluate --store stores/megc2019.zarr --checkpoints runs/stag-loso-megc2019-3/checkpoints --protocol loso
    stag evaluate --store stores/megc2019.zarr --checkpoints ../shared/data/ststnet_release/weights \\
                  --format ststnet-release --protocol loso --out runs/ststnet-release

Writes what ``stag-fit`` writes (predictions.csv, megc_log_seed<S>.txt, metrics.json,
confusion.png, report.md; ``stag_model.report``), without training: each fold's
test samples are predicted by the checkpoint of that fold. ``--format stag`` reads
``checkpoints/seed<S>/<fold>.pt`` as stag-fit writes them; ``--format ststnet-release``
reads the per-subject weights released by STSTNet's authors (``<subject>.pth``;
``stag_model.released_weights``). Every file is loaded with
``torch.load(weights_only=True)``: a pickle that would run code is refused unrun.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from stag_model.protocols import SUBJECT_INDEPENDENT


def _seeds(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(s) for s in text.split(",") if s.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"--seeds takes integers separated by commas, got {text!r}") from None


def _evaluate_command(args: argparse.Namespace) -> int:
    from stag_model.data import make_source, open_samples
    from stag_model.evaluate import CheckpointError, evaluate_folds, read_checkpoints, run_configs
    from stag_model.protocols import make_folds
    from stag_model.registry import prepare_samples
    from stag_model.report import write_run
    from stag_model.train import resolve_device

    try:
        device = resolve_device(args.device)
        found = read_checkpoints(args.checkpoints, args.format, args.subject_order, args.seeds)
        configs = run_configs(found, args.scheme)
        samples = prepare_samples(open_samples(args.store, configs["data"]), configs)
        folds = make_folds(args.protocol, samples.subjects, samples.labels, samples.datasets, n_splits=args.folds,
                           seed=configs["train"].seeds[0])
        source = make_source(samples, configs["data"], device)
        scheme = configs["data"].scheme
        print(f"stag evaluate: {found.description} | {len(samples)} samples, {len(set(samples.subjects))} subjects, "
              f"classes {list(samples.class_names)} | {args.protocol}: {len(folds)} folds | seeds {found.seeds} | "
              f"{device}")
        started = time.perf_counter()
        log = (lambda _: None) if args.quiet else (lambda m: print(m, flush=True))
        results = evaluate_folds(found, samples, source, folds, device, log, scheme=scheme)
    except (CheckpointError, FileNotFoundError, KeyError, ValueError, RuntimeError) as exc:
        message = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
        print(f"stag evaluate: error: {message}", file=sys.stderr)
        return 2
    out = args.out or Path("runs") / f"evaluate-{found.model}-{args.protocol}-{scheme}"
    run_info = {"command": "stag evaluate", "checkpoints": str(args.checkpoints), "format": args.format,
                "checkpoint_origin": found.description, "stores": [str(p) for p in samples.paths],
                "protocol": args.protocol, "scheme": scheme, "device": str(device),
                "training": f"not trained here: checkpoints from {args.checkpoints}",
                "argv": sys.argv[1:], "inputs": [r.as_json() for r in samples.inputs],
                **{k: v.model_dump(mode="json") for k, v in configs.items()}}
    metrics = write_run(out, samples, results, run_info, save_checkpoints=False)
    s = metrics["summary"]
    print(f"\n{'metric':<10} {'mean':>7} {'std':>7}   per seed")
    for key in ("uf1", "uar", "accuracy"):
        print(f"{key.upper():<10} {s[key]['mean']:7.4f} {s[key]['std']:7.4f}   "
              + " ".join(f"{v:.4f}" for v in s[key]["values"]))
    print(f"{time.perf_counter() - started:.1f} s; outputs in {out}")
    return 0


def register(subparsers) -> None:
    """Add ``evaluate`` to the ``stag`` command."""
    p = subparsers.add_parser("evaluate", help="evaluate per-fold checkpoints (stag-fit's or released weights) "
                              "on the folds they were trained for")
    p.add_argument("--store", action="append", required=True, help="feature store (repeat for several)")
    p.add_argument("--checkpoints", type=Path, required=True,
                   help="stag: a run's checkpoints/ folder (seed<S>/<fold>.pt); ststnet-release: the weights folder")
    p.add_argument("--format", choices=["stag", "ststnet-release"], default="stag",
                   help="stag-fit's checkpoints, or the per-subject weights released by STSTNet's authors")
    p.add_argument("--protocol", choices=sorted(SUBJECT_INDEPENDENT), default="loso")
    p.add_argument("--folds", type=int, default=5, help="k for groupkfold / stratified (as when trained)")
    p.add_argument("--scheme", help="class scheme in the store (default: the checkpoints' scheme)")
    p.add_argument("--subject-order", type=Path,
                   help="ststnet-release: the release's subject list (default: video442subName.txt beside the "
                        "weights folder, else the .pth names)")
    p.add_argument("--seeds", type=_seeds, help="seeds to evaluate, e.g. 1,2 (default: every seed found)")
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    p.add_argument("--out", type=Path, help="output folder (default runs/evaluate-<model>-<protocol>-<scheme>)")
    p.add_argument("--quiet", action="store_true", help="no per-fold lines")
    p.set_defaults(handler=_evaluate_command)
