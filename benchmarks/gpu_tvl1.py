"""TV-L1 on a CUDA GPU (the torch backend) against one OpenCV thread, for benchmarks/gpu_check.sh.

Prints, and writes to ``--out``/gpu_tvl1.json:
  1. pairs per second of the torch backend at 1, 8, 64 and 256 pairs per call on the real CASME II
     frames (the 90 ordered pairs of ../shared/data/casme2_frames, 280 x 340 px, cycled), the solver alone
     and with the DIS initial flow the ingest adds (OpenCV, one CPU thread), against one OpenCV thread
     on the first 8 of the same pairs (DIS included);
  2. mean EPE torch (GPU) vs OpenCV on the six CASME II pairs with an IPOL flow (and each against IPOL)
     and on demo crops (onset -> selected frames of demo clips, the demo's TV-L1 parameters);
  3. the largest difference between the flows of the six CASME II pairs solved in one call and one by
     one on the device (0 on the CPU; float noise on CUDA);
  4. the demo dataset's ingest time, in this process, with OpenCV (one thread), with torch one clip per
     call (as ``ingest_in_process`` runs it) and with torch on the pairs of many clips per call
     (``sample_steps.ingest_batch``, ``DEVICE_PAIRS_PER_CALL`` pairs), torch on the device.

    python benchmarks/gpu_tvl1.py [--out DIR] [--batch-sizes 1,8,64,256] [--demo-clips 4] [--no-ingest]
    python benchmarks/gpu_tvl1.py --device cpu --batch-sizes 1,2 --demo-clips 1 --ingest-clips 6   # smoke, no GPU

Without CUDA it stops with exit status 2. ``--device cpu`` runs the same steps on the CPU (with small
``--batch-sizes`` and ``--ingest-clips``) to check the script where there is no GPU.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._common import SHARED_DATA, scratch_dir  # noqa: E402
from benchmarks.tvl1_backends import (  # noqa: E402
    agreement_rows,
    casme_pairs,
    demo_catalog,
    demo_crop_pairs,
    run_pairs,
)

OPENCV_PAIRS = 8  # pairs one OpenCV thread is timed on (about 1 s each)


def casme_pool(data: Path = SHARED_DATA) -> tuple[np.ndarray, np.ndarray]:
    """Every ordered pair (i, j), i != j, of the ten CASME II frames: (90, H, W) firsts and seconds."""
    import cv2

    paths = [data / "casme2_frames" / f"{i:03d}.jpg" for i in range(1, 11)]
    if missing := [str(path) for path in paths if not path.is_file()]:
        raise SystemExit(f"gpu_tvl1: CASME II frame {missing[0]} not found (--data names the folder of casme2_frames/)")
    frames = [cv2.imread(str(path), cv2.IMREAD_GRAYSCALE) for path in paths]
    pairs = [(a, b) for i, a in enumerate(frames) for j, b in enumerate(frames) if i != j]
    return np.stack([a for a, _ in pairs]), np.stack([b for _, b in pairs])


def throughput(firsts: np.ndarray, seconds: np.ndarray, config, batch: int, device: str) -> dict:
    """Pairs per second of the torch solver with ``batch`` pairs per call (the pool cycled to fill it; for
    batch 1, ``OPENCV_PAIRS`` calls), alone and with the DIS initial flows computed on the CPU."""
    import torch

    from stag_features.extract.flow import initial_flows
    from stag_features.extract.tvl1_torch import torch_threads, tvl1_torch

    calls = OPENCV_PAIRS if batch == 1 else 1
    index = np.arange(batch * calls) % len(firsts)
    a, b = firsts[index], seconds[index]
    started = time.perf_counter()
    initial = initial_flows(a, b, config)
    dis_s = time.perf_counter() - started
    started = time.perf_counter()
    with torch_threads(config.torch_threads if device == "cpu" else 0):
        for c in range(calls):
            part = slice(c * batch, (c + 1) * batch)
            tvl1_torch(a[part], b[part], config, None if initial is None else initial[part], device)
    if device == "cuda":
        torch.cuda.synchronize()
    solve_s = time.perf_counter() - started
    n = batch * calls
    return {"batch": batch, "pairs": n, "solve_s": solve_s, "dis_s": dis_s, "pairs_per_s": n / solve_s,
            "pairs_per_s_with_dis": n / (solve_s + dis_s)}


def timed_ingest(catalog: Path, folder: Path, backend: str, device: str, batched: bool,
                 clips: int | None) -> dict:
    """The demo (its first ``clips`` samples, or all) ingested in this process into a fresh store with
    ``tvl1.backend`` = ``backend`` on ``device``: one sample after another (``ingest_sample_with_retries``,
    what ``ingest_in_process`` does), or ``batched``: ``ingest_batch`` over the whole plan, TV-L1 pairs of
    many clips per call. Wall seconds (planning included), TV-L1 stage seconds, samples ok / failed."""
    from stag_features.adapters import load_dataset
    from stag_features.ingest.producers import producer_for
    from stag_features.ingest.sample_steps import DEVICE_PAIRS_PER_CALL, ingest_batch, ingest_sample_with_retries
    from stag_features.ingest.steps import prepare_ingest, resolve_dataset

    entry, config = resolve_dataset(catalog, "demo")
    mode = "batched" if batched else "per_clip"
    entry = entry.model_copy(update={"store": str(folder / f"demo_{backend}_{device}_{mode}.zarr")})
    producer = producer_for(entry, config.with_overrides(tvl1={"backend": backend, "device": device}))
    only = None if clips is None else {r.sample_id for r in load_dataset(entry).records[:clips]}
    started = time.perf_counter()
    plan = prepare_ingest(entry, producer, force=True, only=only)
    if batched:
        outcomes = ingest_batch(plan.store, plan.work, producer, pairs_per_call=DEVICE_PAIRS_PER_CALL)
    else:
        outcomes = [ingest_sample_with_retries(plan.store, item, producer) for item in plan.work]
    wall_s = time.perf_counter() - started
    return {"backend": backend, "device": device, "clips_per_call": "many" if batched else "one", "wall_s": wall_s,
            "tvl1_s": sum(o.timings.get("tvl1", 0.0) for o in outcomes), "samples": len(outcomes),
            "ok": sum(o.status == "ok" for o in outcomes), "failed": sum(o.status == "failed" for o in outcomes)}


def batch_vs_single(firsts: np.ndarray, seconds: np.ndarray, config) -> float:
    """Largest |difference| in px between the flows of the pairs solved in one call and one by one."""
    together, _ = run_pairs(firsts, seconds, config, len(firsts))
    alone, _ = run_pairs(firsts, seconds, config, 1)
    return float(np.abs(together - alone).max())


def main(argv: list[str] | None = None) -> int:
    import cv2
    import torch

    from schemas.motion_config import TVL1Config

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=None, help="folder for gpu_tvl1.json")
    parser.add_argument("--data", type=Path, default=SHARED_DATA,
                        help="folder holding casme2_frames/ (default ../shared/data; a device run carries a copy)")
    parser.add_argument("--device", choices=("cuda", "cpu"), default="cuda")
    parser.add_argument("--batch-sizes", default="1,8,64,256")
    parser.add_argument("--demo-clips", type=int, default=4)
    parser.add_argument("--no-ingest", action="store_true")
    parser.add_argument("--ingest-clips", type=int, default=None, help="ingest only the demo's first N clips")
    args = parser.parse_args(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        print(f"gpu_tvl1: torch {torch.__version__} sees no CUDA device; nothing to measure "
              "(--device cpu checks the script on the CPU)", file=sys.stderr)
        return 2
    cv2.setNumThreads(1)
    where = torch.cuda.get_device_name(0) if args.device == "cuda" else "CPU"
    print(f"gpu_tvl1: {where}; torch {torch.__version__}; OpenCV {cv2.__version__}", flush=True)
    opencv, on_device = TVL1Config(), TVL1Config(backend="torch", device=args.device)
    firsts, seconds = casme_pool(args.data)
    throughput(firsts, seconds, on_device, 2, args.device)  # warm-up: CUDA context, kernels, allocator
    _, opencv_s = run_pairs(firsts[:OPENCV_PAIRS], seconds[:OPENCV_PAIRS], opencv, 1)
    opencv_rate = OPENCV_PAIRS / opencv_s
    print(f"OpenCV, 1 thread: {opencv_rate:.2f} pairs/s (DIS included, {OPENCV_PAIRS} CASME II pairs, "
          f"{firsts.shape[2]} x {firsts.shape[1]})", flush=True)
    rates = []
    for batch in (int(b) for b in args.batch_sizes.split(",")):
        row = throughput(firsts, seconds, on_device, batch, args.device)
        row["vs_opencv_thread"] = row["pairs_per_s_with_dis"] / opencv_rate
        rates.append(row)
        print(f"torch on {args.device}, {batch:>3} pairs per call: {row['pairs_per_s']:8.2f} pairs/s solver, "
              f"{row['pairs_per_s_with_dis']:8.2f} with DIS on one CPU thread ({row['vs_opencv_thread']:.1f}x one "
              "OpenCV thread)", flush=True)

    names, a, b, references = casme_pairs(args.data)
    ours, _ = run_pairs(a, b, on_device, len(a))
    theirs, _ = run_pairs(a, b, opencv, 1)
    casme = agreement_rows(names, ours, theirs, references)
    for row in casme:
        print(f"CASME II {row['pair']}: EPE torch ({args.device}) vs OpenCV {row['epe_torch_vs_opencv']:.4f} px; vs "
              f"IPOL torch {row['epe_torch_vs_ipol']:.4f}, OpenCV {row['epe_opencv_vs_ipol']:.4f}", flush=True)
    apart = batch_vs_single(a, b, on_device)
    print(f"CASME II pairs in one call vs one by one on {args.device}: largest difference {apart:.2e} px", flush=True)
    folder = scratch_dir("gpu-tvl1")
    catalog = demo_catalog(folder)
    demo_names, a, b, demo_config = demo_crop_pairs(catalog, args.demo_clips)
    ours, _ = run_pairs(a, b, demo_config.tvl1.model_copy(update={"backend": "torch", "device": args.device}), len(a))
    theirs, _ = run_pairs(a, b, demo_config.tvl1, 1)
    demo = agreement_rows(demo_names, ours, theirs)
    print(f"demo crops ({len(demo)} pairs of {args.demo_clips} clips): EPE torch vs OpenCV mean "
          f"{np.mean([r['epe_torch_vs_opencv'] for r in demo]):.4f} px, largest "
          f"{max(r['epe_torch_vs_opencv'] for r in demo):.4f} px", flush=True)
    ingest = []
    if not args.no_ingest:
        for backend, device, batched in (("opencv", "cpu", False), ("torch", args.device, False),
                                         ("torch", args.device, True)):
            ingest.append(timed_ingest(catalog, folder, backend, device, batched, args.ingest_clips))
            row = ingest[-1]
            print(f"demo ingest ({row['samples']} clips), {backend} on {device}, {row['clips_per_call']} clip(s) per "
                  f"TV-L1 call: {row['wall_s']:.1f} s, TV-L1 {row['tvl1_s']:.1f} s ({row['ok']} ok, {row['failed']} "
                  "failed)", flush=True)
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        doc = {"device": where, "torch": torch.__version__, "opencv": cv2.__version__,
               "opencv_pairs_per_s": opencv_rate, "throughput": rates, "casme2": casme,
               "batch_vs_single_max_px": apart, "demo_crops": demo,
               "ingest": ingest}
        (args.out / "gpu_tvl1.json").write_text(json.dumps(doc, indent=2) + "\n")
        print(f"wrote {args.out / 'gpu_tvl1.json'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
