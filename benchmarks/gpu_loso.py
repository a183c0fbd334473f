"""LOSO on the MEGC 2019 composite on a GPU against the CPU, for benchmarks/gpu_check.sh.

STAG (25 epochs) and STSTNet (40 epochs), 1 seed: all 68 folds trained together on CUDA
(``TrainConfig.parallel = vmap``, bfloat16 autocast where the GPU has it), then the same folds on the
CPU (``parallel = processes``, one fold per core). Prints the wall time of each, the speed-up, how
many samples both predict alike and the largest difference between their class probabilities
(dropout masks are drawn differently on the two devices, so the two runs agree statistically).

    python benchmarks/gpu_loso.py --store stores/megc2019.zarr [--models stag,ststnet] [--out DIR]
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

EPOCHS = {"stag": 25, "ststnet": 40}


def run(store: Path, model: str, device: str, parallel: str) -> tuple[float, object, dict]:
    import numpy as np
    import torch

    from schemas.model_config import DataConfig, ModelConfig, StstnetConfig, TrainConfig
    from stag_model.data import make_source, open_samples
    from stag_model.metrics import pooled_and_per_fold
    from stag_model.protocols import make_folds
    from stag_model.report import predictions_table
    from stag_model.train import run_protocol

    data = DataConfig(scheme="megc2019-3")
    started = time.perf_counter()
    samples = open_samples([store], data)
    source = make_source(samples, data, torch.device(device))
    folds = make_folds("loso", samples.subjects, samples.labels, samples.datasets)
    configs = {"train": TrainConfig(model=model, epochs=EPOCHS[model], seeds=(1,), device=device, parallel=parallel),
               "model": ModelConfig(), "ststnet": StstnetConfig(), "data": data}
    results, path = run_protocol(samples, source, folds, configs, torch.device(device), log=lambda _: None)
    if device == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - started
    table = predictions_table(samples, results)
    pooled = pooled_and_per_fold(table, len(samples.class_names), samples.class_names)["pooled"]
    table = table.sort_values("sample_id").reset_index(drop=True)
    return seconds, table, {"path": path, "uf1": pooled["uf1"], "uar": pooled["uar"],
                            "probabilities": np.stack([table[f"p_{c}"] for c in samples.class_names], 1)}


def main(argv: list[str] | None = None) -> int:
    import numpy as np
    import torch

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--store", type=Path, default=Path("stores/megc2019.zarr"))
    parser.add_argument("--models", default="stag,ststnet")
    parser.add_argument("--out", type=Path, default=None, help="folder for a JSON of the figures")
    args = parser.parse_args(argv)
    if not torch.cuda.is_available():
        print("gpu_loso: torch sees no CUDA device; nothing to compare", file=sys.stderr)
        return 2
    print(f"device: {torch.cuda.get_device_name(0)}; torch {torch.__version__}; CPU cores "
          f"{torch.get_num_threads()}", flush=True)
    figures = {}
    for model in args.models.split(","):
        gpu_s, gpu_table, gpu = run(args.store, model, "cuda", "vmap")
        cpu_s, cpu_table, cpu = run(args.store, model, "cpu", "processes")
        same = float((gpu_table.y_pred.values == cpu_table.y_pred.values).mean())
        diff = float(np.abs(gpu["probabilities"] - cpu["probabilities"]).max())
        figures[model] = {"gpu_s": gpu_s, "cpu_s": cpu_s, "gpu_path": gpu["path"], "cpu_path": cpu["path"],
                          "gpu_uf1": gpu["uf1"], "gpu_uar": gpu["uar"], "cpu_uf1": cpu["uf1"], "cpu_uar": cpu["uar"],
                          "same_prediction": same, "max_probability_difference": diff}
        print(f"{model}: LOSO (68 folds, {EPOCHS[model]} epochs, 1 seed) GPU {gpu_s:.1f} s [{gpu['path']}] vs CPU "
              f"{cpu_s:.1f} s [{cpu['path']}]: {cpu_s / gpu_s:.1f}x; UF1 {gpu['uf1']:.3f} vs {cpu['uf1']:.3f}, UAR "
              f"{gpu['uar']:.3f} vs {cpu['uar']:.3f}; same prediction for {100 * same:.1f}% of the samples, largest "
              f"probability difference {diff:.3f}", flush=True)
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "gpu_loso.json").write_text(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
