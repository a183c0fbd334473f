"""What two cores of this machine give to perfectly parallel work, right now
(the ceiling for issue 8's 2-vs-1-worker scaling).

A job computes TV-L1 (``stag_features.flow.tvl1_flow``, a dataset's TV-L1
parameters, one OpenCV thread) on a synthetic textured pair of frames of that
dataset's crop size, a fixed number of times. ``measure_ceiling`` times one job
alone, then two identical jobs at once in separate processes: the ceiling is
2 x (one alone) / (both at once). Nothing is shared between the two jobs, no
start-up is timed (each job times its own loop) and there is no fixed cost, so
a run of the pipeline cannot scale better than this on the same machine at the
same time; shared caches, memory bandwidth and the host's other tenants all
show up here. On a machine whose cores are really free the figure is 2.0.

    python benchmarks/parallel_ceiling.py                  # both datasets' settings, 3 repeats each
    python benchmarks/parallel_ceiling.py --job --pairs 6   # one job: prints its seconds

The settings are those of ``benchmarks/ingest_runs.py``'s datasets: ``real``
(default PipelineConfig) and ``demo`` (the project catalog's demo overrides).
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

TEXTURE_SIGMA_PX = 2.0  # blur of the random texture: structure at the scale of facial detail at crop size
SHIFT_PX = 0.7  # sub-pixel motion between the two frames, the order of a micro-expression's
JOB_TARGET_S = 3.0  # seconds of work per job by default: long against process noise, short in all


def synthetic_pair(size: int, seed: int = 0):
    """A blurred random texture and the same texture moved by SHIFT_PX to the right (uint8, size x size)."""
    import cv2
    import numpy as np

    noise = np.random.default_rng(seed).uniform(0, 255, (size, size)).astype(np.float32)
    first = cv2.GaussianBlur(noise, (0, 0), TEXTURE_SIGMA_PX)
    moved = cv2.warpAffine(first, np.float32([[1, 0, SHIFT_PX], [0, 1, 0]]), (size, size),
                           borderMode=cv2.BORDER_REFLECT)
    scale = 255.0 / max(float(first.max()), 1e-6)
    return (first * scale).clip(0, 255).astype(np.uint8), (moved * scale).clip(0, 255).astype(np.uint8)


def run_job(pairs: int, size: int, tvl1_json: str) -> float:
    """Seconds of ``pairs`` TV-L1 computations on one synthetic pair (after one untimed warm-up)."""
    from schemas.motion_config import TVL1Config
    from stag_features.flow import make_tvl1, tvl1_flow

    config = TVL1Config.model_validate_json(tvl1_json) if tvl1_json else TVL1Config()
    first, second = synthetic_pair(size)
    solver = make_tvl1(config)
    tvl1_flow(first, second, config, solver)
    started = time.perf_counter()
    for _ in range(pairs):
        tvl1_flow(first, second, config, solver)
    return time.perf_counter() - started


def _job_command(pairs: int, size: int, tvl1_json: str) -> list[str]:
    return [sys.executable, str(Path(__file__).resolve()), "--job", "--pairs", str(pairs), "--size", str(size),
            "--tvl1-json", tvl1_json]


def _seconds(process: subprocess.Popen) -> float:
    out, err = process.communicate()
    if process.returncode != 0:
        raise RuntimeError(f"parallel_ceiling job failed ({process.returncode}): {err[-2000:]}")
    return float(json.loads(out.strip().splitlines()[-1])["seconds"])


def measure_ceiling(pairs: int, size: int, tvl1_json: str = "", env: dict | None = None) -> dict:
    """One job alone, then two at once: their seconds and the ceiling 2 x alone / together (the
    slower of the two)."""
    def start():
        return subprocess.Popen(_job_command(pairs, size, tvl1_json), stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, env=env)

    alone = _seconds(start())
    both = [start(), start()]
    together = max(_seconds(p) for p in both)
    return {"pairs": pairs, "size": size, "alone_s": alone, "together_s": together, "ceiling": 2 * alone / together}


def dataset_settings() -> dict[str, tuple[int, str]]:
    """(crop size, TVL1Config JSON) of ingest_runs' datasets: real (defaults) and demo (the catalog's overrides)."""
    from benchmarks._inputs import project_demo_options
    from schemas.pipeline_config import PipelineConfig

    out = {}
    for name, config in (("real", PipelineConfig()),
                         ("demo", PipelineConfig.model_validate(project_demo_options().get("pipeline", {})))):
        out[name] = (config.align.crop_size, config.tvl1.model_dump_json(by_alias=True))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--job", action="store_true", help="run one job and print its seconds (used by the ceiling)")
    parser.add_argument("--pairs", type=int, default=0,
                        help="TV-L1 computations per job (default: about 3 s of work per dataset)")
    parser.add_argument("--size", type=int, default=224, help="--job: frame side in pixels")
    parser.add_argument("--tvl1-json", default="", help="--job: TVL1Config as JSON (default: its defaults)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--name", default="parallel_ceiling")
    args = parser.parse_args(argv)
    if args.job:
        print(json.dumps({"seconds": run_job(args.pairs or 6, args.size, args.tvl1_json)}))
        return 0
    from benchmarks._common import LoadSampler, write_results

    rows = []
    with LoadSampler() as load:
        for dataset, (size, tvl1_json) in dataset_settings().items():
            pairs = args.pairs or max(1, round(JOB_TARGET_S / run_job(1, size, tvl1_json)))
            for repeat in range(args.repeats):
                rows.append({"dataset": dataset, "repeat": repeat, **measure_ceiling(pairs, size, tvl1_json)})
                print(f"{dataset} #{repeat}: {rows[-1]['ceiling']:.2f}x ({rows[-1]['alone_s']:.2f} s alone, "
                      f"{rows[-1]['together_s']:.2f} s two at once)", flush=True)
    write_results(args.name, {"rows": rows}, load, notes=[
        "ceiling: 2 x (one TV-L1 job alone) / (two identical jobs at once, the slower), each job timing its own "
        "loop over a synthetic pair at the dataset's crop size and TV-L1 parameters, one OpenCV thread",
        "no fixed cost and nothing shared: the best 2-vs-1 speed-up this machine gives CPU-bound work at the time",
    ])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
