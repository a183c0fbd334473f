"""What two cores of this machine give to perfectly parallel work, right now
(the ceiling for issue 8's 2-vs-1-worker scaling).

A job computes TV-L1 (``stag_features.extract.flow.tvl1_flow``, a dataset's TV-L1
parameters, one OpenCV thread) on a synthetic textured pair of frames of that
dataset's crop size, a fixed number of times. ``measure_ceiling`` times one job
alone, then two identical jobs at once in separate processes: the ceiling is
2 x (one alone) / (both at once). Nothing is shared between the two jobs, no
start-up is timed (each job times its own loop) and there is no fixed cost, so
a run of the pipeline cannot scale better than this on the same machine at the
same time; shared caches, memory bandwidth and the host's other tenants all
show up here. On a machine whose cores are really free the figure is 2.0.

A pipeline job (``--kind pipeline``, the demo set) does what a Dask worker
does for each sample, without Prefect or Dask: ``ingest_sample_with_retries``
(input hash, decode, landmarks, alignment, motion, TV-L1, ROIs, AUs, graph and
the write) over the benchmark's demo clips into a store of its own, after one
untimed sample. Demo clips are a third TV-L1, so TV-L1 alone is not their
work; the real clips are 86-97% TV-L1 (section 1), so there it is.

    python benchmarks/parallel_ceiling.py                  # both datasets' settings, 3 repeats each
    python benchmarks/parallel_ceiling.py --job --pairs 6   # one job: prints its seconds
    python benchmarks/parallel_ceiling.py --job --kind pipeline --samples 30

The settings are those of ``benchmarks/ingest_runs.py``'s datasets: ``real``
(default PipelineConfig) and ``demo`` (the project catalog's demo overrides).
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

TEXTURE_SIGMA_PX = 2.0  # blur of the random texture: structure at the scale of facial detail at crop size
SHIFT_PX = 0.7  # sub-pixel motion between the two frames, the order of a micro-expression's
JOB_TARGET_S = 3.0  # seconds of work per job by default: long against process noise, short in all
PIPELINE_SAMPLES = 30  # demo samples per pipeline job: ~9 s, a quarter of a 2-worker run's per-worker work


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
    from stag_features.extract.flow import make_tvl1, tvl1_flow

    config = TVL1Config.model_validate_json(tvl1_json) if tvl1_json else TVL1Config()
    first, second = synthetic_pair(size)
    solver = make_tvl1(config)
    tvl1_flow(first, second, config, solver)
    started = time.perf_counter()
    for _ in range(pairs):
        tvl1_flow(first, second, config, solver)
    return time.perf_counter() - started


def demo_ingest_plan(folder: Path):
    """(store, work items, producer) of the benchmark's demo set ingested into a store in ``folder``
    (the shared generated frames; prepare_ingest creates the store and allocates the slots)."""
    from benchmarks._inputs import DEMO_DEFAULTS, write_bench_catalog
    from stag_features.ingest.steps import prepare_ingest, resolve_producer

    entry, producer = resolve_producer(write_bench_catalog(folder, demo=dict(DEMO_DEFAULTS)), "demo", None)
    plan = prepare_ingest(entry, producer)
    return plan.store, plan.work, producer


def run_pipeline_job(samples: int) -> float:
    """Seconds of ``samples`` demo samples' whole per-sample work (one untimed sample first, which
    also loads the landmark model), into a store of this job's own."""
    from stag_features.ingest.sample_steps import ingest_sample_with_retries

    with tempfile.TemporaryDirectory(prefix="ceiling-") as folder:
        store, items, producer = demo_ingest_plan(Path(folder))
        if len(items) < samples + 1:
            raise SystemExit(f"the demo set has {len(items)} samples; --samples must be at most {len(items) - 1}")
        ingest_sample_with_retries(store, items[0], producer)
        started = time.perf_counter()
        for item in items[1:samples + 1]:
            outcome = ingest_sample_with_retries(store, item, producer)
            if outcome.status != "ok":
                raise RuntimeError(f"demo sample {item.sample_id} failed: {outcome.stage} {outcome.reason}")
        return time.perf_counter() - started


def _job_command(pairs: int, size: int, tvl1_json: str) -> list[str]:
    return [sys.executable, str(Path(__file__).resolve()), "--job", "--pairs", str(pairs), "--size", str(size),
            "--tvl1-json", tvl1_json]


def _pipeline_command(samples: int) -> list[str]:
    return [sys.executable, str(Path(__file__).resolve()), "--job", "--kind", "pipeline", "--samples", str(samples)]


def _seconds(process: subprocess.Popen) -> float:
    out, err = process.communicate()
    if process.returncode != 0:
        raise RuntimeError(f"parallel_ceiling job failed ({process.returncode}): {err[-2000:]}")
    return float(json.loads(out.strip().splitlines()[-1])["seconds"])


def measure_ceiling(command: list[str], env: dict | None = None) -> dict:
    """One job (``command``) alone, then two at once: their seconds and the ceiling 2 x alone /
    together (the slower of the two)."""
    def start():
        return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)

    alone = _seconds(start())
    both = [start(), start()]
    together = max(_seconds(p) for p in both)
    return {"alone_s": alone, "together_s": together, "ceiling": 2 * alone / together}


def _print_row(row: dict) -> None:
    print(f"{row['kind']} {row['dataset']} #{row['repeat']}: {row['ceiling']:.2f}x ({row['alone_s']:.2f} s alone, "
          f"{row['together_s']:.2f} s two at once)", flush=True)


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
    parser.add_argument("--kind", choices=["tvl1", "pipeline"], default="tvl1",
                        help="--job: TV-L1 on a synthetic pair, or the demo's whole per-sample work")
    parser.add_argument("--samples", type=int, default=PIPELINE_SAMPLES,
                        help="demo samples per pipeline job (~0.3 s each)")
    parser.add_argument("--pairs", type=int, default=0,
                        help="TV-L1 computations per job (default: about 3 s of work per dataset)")
    parser.add_argument("--size", type=int, default=224, help="--job: frame side in pixels")
    parser.add_argument("--tvl1-json", default="", help="--job: TVL1Config as JSON (default: its defaults)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--name", default="parallel_ceiling")
    args = parser.parse_args(argv)
    if args.job:
        seconds = (run_pipeline_job(args.samples) if args.kind == "pipeline"
                   else run_job(args.pairs or 6, args.size, args.tvl1_json))
        print(json.dumps({"seconds": seconds}))
        return 0
    from benchmarks._common import LoadSampler, write_results

    rows = []
    with LoadSampler() as load:
        for dataset, (size, tvl1_json) in dataset_settings().items():
            pairs = args.pairs or max(1, round(JOB_TARGET_S / run_job(1, size, tvl1_json)))
            for repeat in range(args.repeats):
                rows.append({"kind": "tvl1", "dataset": dataset, "repeat": repeat, "pairs": pairs, "size": size,
                             **measure_ceiling(_job_command(pairs, size, tvl1_json))})
                _print_row(rows[-1])
        with tempfile.TemporaryDirectory(prefix="ceiling-") as folder:
            demo_ingest_plan(Path(folder))  # the demo frames generated once, before any job is timed
        for repeat in range(args.repeats):
            rows.append({"kind": "pipeline", "dataset": "demo", "repeat": repeat, "samples": args.samples,
                         **measure_ceiling(_pipeline_command(args.samples))})
            _print_row(rows[-1])
    write_results(args.name, {"rows": rows}, load, notes=[
        "ceiling: 2 x (one job alone) / (two identical jobs at once, the slower), each job timing its own loop",
        "tvl1 jobs: a synthetic pair at the dataset's crop size and TV-L1 parameters, one OpenCV thread",
        "pipeline jobs: a Dask worker's per-sample work on the demo clips (ingest_sample_with_retries: hash, "
        "every stage, the write) into a store of each job's own, without Prefect or Dask",
        "no fixed cost and nothing shared: the best 2-vs-1 speed-up this machine gives that work at the time",
    ])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
