"""STSTNet's released weights evaluated by ``stag evaluate`` on the composite store stag builds,
against the released log (``STSTNet_python_logfile.txt``: per subject, in the order of
``video442subName.txt``, predicted and true labels without clip names).

    python -m benchmarks.ststnet_release [--store stores/megc2019.zarr]

Per subject, the multiset of (true, predicted) pairs of ``stag evaluate``'s predictions must equal the
log's; the pooled UF1 / UAR must equal the log's final line (0.7209 / 0.725). The same weights are also
run with the streams in the other order (conv -> BN -> ReLU) to record what the layer order is worth.
Writes benchmarks/results/ststnet_release.json and the run's outputs under --out.
"""
from __future__ import annotations

import argparse
import json
import re
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from benchmarks._common import SHARED_DATA
from schemas.model_config import DataConfig, StstnetConfig
from stag_cli.main import main as stag
from stag_model.baselines import Ststnet
from stag_model.data import make_source, open_samples
from stag_model.metrics import classification_metrics
from stag_model.released_weights import StstnetRelease

RELEASE = SHARED_DATA / "ststnet_release"
RESULTS = Path(__file__).parent / "results" / "ststnet_release.json"


def released_log(path: Path) -> tuple[dict[str, list[tuple[int, int]]], dict[str, float]]:
    """Per subject its sorted (true, predicted) pairs, and the log's final UF1 / UAR."""
    text = path.read_text()
    found = re.findall(r"Subject: (\S+)\s*\nPredicted\s*: \[([^\]]*)\]\s*\nGround Truth: \[([^\]]*)\]", text)
    numbers = lambda s: [int(x) for x in s.split(",")]  # noqa: E731
    final = re.search(r"Final Evaluation:\s*\nUF1: ([\d.]+) \| UAR: ([\d.]+)", text)
    return ({s: sorted(zip(numbers(t), numbers(p))) for s, p, t in found},
            {"uf1": float(final.group(1)), "uar": float(final.group(2))})


def matches(pairs: dict[str, list[tuple[int, int]]], log: dict[str, list[tuple[int, int]]]) -> list[str]:
    """Subjects of the log whose pairs ``pairs`` reproduce."""
    return [s for s in log if pairs.get(s) == log[s]]


def other_order(store: Path, log: dict) -> dict:
    """The released weights in conv -> BN -> ReLU streams (otherwise as released)."""
    data = DataConfig(scheme="megc2019-3")
    samples = open_samples([store], data)
    source = make_source(samples, data, torch.device("cpu"))
    release = StstnetRelease.open(RELEASE / "weights")
    pairs, truth, predicted = {}, [], []
    for subject in release.subjects:
        model = Ststnet(StstnetConfig(layer_order="conv_bn_relu"), 3)
        model.load_state_dict(release.load(subject, "megc2019-3").state_dict)
        positions = np.flatnonzero(samples.subjects == subject)
        _, batch = next(iter(source.batches(positions, 256)))
        with torch.no_grad():
            guess = model.eval()(batch)[0].argmax(1).tolist()
        pairs[subject] = sorted(zip(samples.labels[positions].tolist(), guess))
        truth += samples.labels[positions].tolist()
        predicted += guess
    m = classification_metrics(truth, predicted, 3)
    return {"subjects_matching": len(matches(pairs, log)), "uf1": m["uf1"], "uar": m["uar"]}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--store", type=Path, help="the composite store (default: built by benchmarks._stores)")
    p.add_argument("--out", type=Path, default=Path("runs/ststnet-release"))
    args = p.parse_args()
    if args.store is None:
        from benchmarks._stores import composite_store

        args.store, _ = composite_store()
    code = stag(["evaluate", "--store", str(args.store), "--checkpoints", str(RELEASE / "weights"),
                 "--format", "ststnet-release", "--protocol", "loso", "--device", "cpu", "--out", str(args.out),
                 "--quiet"])
    if code:
        raise SystemExit(code)
    table = pd.read_csv(args.out / "predictions.csv", dtype={"subject": str, "fold": str})
    log, final = released_log(RELEASE / "STSTNet_python_logfile.txt")
    pairs = {s: sorted(zip(part.y_true, part.y_pred)) for s, part in table.groupby("subject")}
    matched = matches(pairs, log)
    metrics = json.loads((args.out / "metrics.json").read_text())["per_seed"]["0"]["pooled"]
    entry = {
        "command": f"stag evaluate --store {args.store} --checkpoints {RELEASE / 'weights'} --format ststnet-release "
                   f"--protocol loso --out {args.out}",
        "store": str(args.store), "samples": len(table), "subjects_in_log": len(log),
        "subjects_matching": len(matched), "subjects_not_matching": [s for s in log if s not in matched],
        "uf1": metrics["uf1"], "uar": metrics["uar"], "accuracy": metrics["accuracy"], "log_final": final,
        "conv_bn_relu_streams": other_order(args.store, log),
        "finished": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(entry, indent=2))
    print(f"{len(matched)} of {len(log)} subjects reproduce the released log; UF1 {entry['uf1']:.4f} UAR "
          f"{entry['uar']:.4f} (log {final['uf1']} / {final['uar']}); in conv -> BN -> ReLU streams "
          f"{entry['conv_bn_relu_streams']['subjects_matching']} subjects, UF1 "
          f"{entry['conv_bn_relu_streams']['uf1']:.4f}")


if __name__ == "__main__":
    main()
