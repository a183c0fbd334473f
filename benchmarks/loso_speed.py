"""A whole LOSO run on the MEGC 2019 composite: the ways of training its folds, timed.

Each run is one ``stag-fit`` command in its own process (its wall time and the peak RSS of its
process tree are measured from outside): STAG (25 epochs) and STSTNet (40 epochs), the composite's
fixed budgets, 1 seed by default, with ``--parallel none`` (the fold-by-fold reference),
``processes`` (one fold per CPU core) and ``vmap`` (all folds as one computation), on the same store,
one after another on the same machine. Each run is compared with the reference: pooled UF1 / UAR,
the share of samples both predict alike and the speed-up (processes draw the reference's random
numbers, so they predict alike; vmap draws dropout masks its own way).

    python benchmarks/loso_speed.py                                 # both models, all paths, seed 1
    python benchmarks/loso_speed.py --models stag --paths processes --seeds 1,2,3
    python benchmarks/loso_speed.py --models ststnet --paths vmap:0 --append   # all 68 folds stacked, added

A path ``vmap:N`` trains N folds' models together at a time (0 = all), ``vmap`` uses ``--members``.
``--append`` adds the runs to the existing results file and compares them with its reference runs
(run it in the same session, on the same machine); every run records its own date and load.
"""
from __future__ import annotations

import argparse
import json
import sys
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._common import (  # noqa: E402
    RESULTS_DIR,
    LoadSampler,
    command_line,
    run_tree,
    scratch_dir,
    table,
    write_results,
)
from benchmarks._report_common import training_path_label  # noqa: E402

SCHEME = "megc2019-3"
EPOCHS = {"stag": 25, "ststnet": 40}  # benchmarks/composite_loso.py's fixed budgets
PATHS = ("none", "processes", "vmap")


def fit(store: Path, model: str, path: str, seeds: str, out: Path, threads: int | None, members: int | None) -> dict:
    """One stag-fit run: wall time, peak memory, pooled metrics and predictions (``members``: vmap's
    ``parallel_members``, None for the trainer's default)."""
    cmd = [str(Path(sys.executable).parent / "stag-fit"), "--store", str(store), "--scheme", SCHEME,
           "--protocol", "loso", "--model", model, "--epochs", str(EPOCHS[model]), "--seeds", seeds,
           "--out", str(out), "--quiet", "--no-checkpoints", "--parallel", path]
    if threads:
        cmd += ["--threads", str(threads)]
    if path == "vmap" and members is not None:
        out.mkdir(parents=True, exist_ok=True)
        (out.parent / f"{out.name}-train.json").write_text(json.dumps({"parallel_members": members}))
        cmd += ["--train-config", str(out.parent / f"{out.name}-train.json")]
    run = run_tree(cmd)
    if run.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{run.stdout[-2000:]}\n{run.stderr[-3000:]}")
    metrics = json.loads((out / "metrics.json").read_text())
    summary = metrics["summary"]
    return {"model": model, "path": path, "seeds": seeds, "parallel_members": members if path == "vmap" else None,
            "wall_s": run.wall_s, "peak_tree_rss_mb": run.peak_tree_rss_mb,
            "training": metrics["training"], "uf1": summary["uf1"], "uar": summary["uar"],
            "accuracy": summary["accuracy"], "predictions": str(out / "predictions.csv")}


def agreement(a: dict, b: dict) -> float:
    """Share of (seed, sample) predictions two runs make alike."""
    import pandas as pd

    left, right = pd.read_csv(a["predictions"]), pd.read_csv(b["predictions"])
    joined = left.merge(right, on=["seed", "sample_id"], suffixes=("_a", "_b"))
    return float((joined.y_pred_a == joined.y_pred_b).mean())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--store", type=Path, default=None, help="composite store (default: built into scratch)")
    parser.add_argument("--models", default="stag,ststnet")
    parser.add_argument("--paths", default=",".join(PATHS))
    parser.add_argument("--seeds", default="1")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    parser.add_argument("--members", type=int, default=4,
                        help="vmap: folds trained together at a time (0 = all; 4 suits a CPU's caches)")
    parser.add_argument("--name", default="loso_speed")
    parser.add_argument("--append", action="store_true",
                        help="add the runs to results/<name>.json, compared with its reference runs")
    args = parser.parse_args(argv)
    from benchmarks._stores import composite_store

    store = args.store or composite_store()[0]
    out_root = scratch_dir("loso-speed")
    previous = json.loads((RESULTS_DIR / f"{args.name}.json").read_text()) if args.append else None
    runs = list(previous["figures"]["runs"]) if previous else []
    for run in runs:  # runs recorded before runs carried their own provenance: the file's
        run.setdefault("command", previous["command"])
        run.setdefault("date_utc", previous["date_utc"])
        run.setdefault("load", previous["load_average"])
    with LoadSampler() as load:
        for model in args.models.split(","):
            for spec in args.paths.split(","):
                path, _, given = spec.partition(":")
                members = int(given) if given else args.members
                print(f"{model} {spec} seeds {args.seeds} ...", flush=True)
                with LoadSampler() as during:
                    result = fit(store, model, path, args.seeds, out_root / f"{model}-{spec.replace(':', '-')}",
                                 args.threads, members)
                result.update(date_utc=datetime.now(timezone.utc).isoformat(timespec="seconds"),
                              load=during.summary(), command=command_line())
                runs.append(result)
                print(f"  {result['wall_s']:.0f} s, peak {result['peak_tree_rss_mb']:.0f} MB, UF1 "
                      f"{result['uf1']['mean']:.3f} UAR {result['uar']['mean']:.3f}", flush=True)
    pairs = {}
    for model in {r["model"] for r in runs}:
        mine = {training_path_label(r): r for r in runs if r["model"] == model}
        for label, run in mine.items():
            if label != "none" and "none" in mine:
                pairs[f"{model} {label}"] = {"speed_up": mine["none"]["wall_s"] / run["wall_s"],
                                             "agreement": agreement(run, mine["none"])}
    rows = [{"model": r["model"], "path": training_path_label(r), "seeds": r["seeds"], "wall_s": r["wall_s"],
             "wall_min": r["wall_s"] / 60, "peak_mb": r["peak_tree_rss_mb"], "UF1": r["uf1"]["mean"],
             "UAR": r["uar"]["mean"]} for r in runs]
    print(table(rows, None, "{:.3f}"))
    for name, pair in pairs.items():
        print(f"{name}: {pair['speed_up']:.2f}x the fold-by-fold loop's speed; predicts "
              f"{100 * pair['agreement']:.1f}% of the samples as it does")
    if previous:  # the file's provenance stays the first session's; each run carries its own
        load = previous["load_average"]
        previous["notes"].append(f"runs added by: {command_line()}")
    notes = previous["notes"] if previous else [
        "each run one stag-fit command in its own process: wall time and peak summed RSS of its process tree",
        "STAG 25 and STSTNet 40 epochs (the composite's fixed budgets), LOSO over 68 subjects, no checkpoints",
        "processes draw each fold's random numbers as the reference does; vmap draws dropout masks its own way",
    ]
    written = write_results(args.name, {"runs": runs, "pairs": pairs, "store": str(store), "epochs": EPOCHS}, load, notes)
    if previous:  # the file names its first command, date and commit; the added runs name theirs
        doc = json.loads(written.read_text())
        doc.update({key: previous[key] for key in ("command", "date_utc", "git_commit")})
        written.write_text(json.dumps(doc, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
