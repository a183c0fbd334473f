"""``stag compare A.csv B.csv``: two prediction files, sample by sample.

    stag compare runs/a/predictions.csv runs/b/predictions.csv [--seed-a 1] [--seed-b 2] [--show 20] [--out d.csv]

Prints the samples both hold, the agreement, McNemar's test on correctness, the
pooled UF1 / UAR / accuracy of both (on the common samples and on each whole file)
and the samples whose predicted class differs (``stag_model.compare``).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path


def _compare_command(args: argparse.Namespace) -> int:
    from stag_model.compare import PredictionFileError, compare_predictions, comparison_text, read_predictions

    try:
        comparison = compare_predictions(read_predictions(args.a, args.seed_a), read_predictions(args.b, args.seed_b))
    except PredictionFileError as exc:
        print(f"stag compare: error: {exc}", file=sys.stderr)
        return 2
    print(comparison_text(comparison, args.show))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        comparison.differing.to_csv(args.out, index=False)
        print(f"wrote the {len(comparison.differing)} differing samples to {args.out}")
    return 0


def register(subparsers) -> None:
    """Add ``compare`` to the ``stag`` command."""
    parser = subparsers.add_parser("compare", help="two predictions.csv files: agreement, McNemar, metrics of both")
    parser.add_argument("a", type=Path, metavar="A.csv", help="predictions.csv of stag-fit or stag evaluate")
    parser.add_argument("b", type=Path, metavar="B.csv", help="the other predictions.csv")
    parser.add_argument("--seed-a", type=int, help="seed of A to compare (needed when A holds several)")
    parser.add_argument("--seed-b", type=int, help="seed of B to compare (needed when B holds several)")
    parser.add_argument("--show", type=int, help="print at most this many differing samples (default: all)")
    parser.add_argument("--out", type=Path, help="write the differing samples to this CSV")
    parser.set_defaults(handler=_compare_command)
