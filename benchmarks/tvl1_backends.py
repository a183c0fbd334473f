"""The torch TV-L1 backend against OpenCV's on the CPU (issue 27): speed per pair, agreement, ingest.

  speed       seconds per pair, the ingest's call (``flow.tvl1_flow_pairs``: DIS initial flow with OpenCV
              on the CPU, then TV-L1), on the real CASME II pairs of ../shared/data (280 x 340 px): OpenCV on
              one thread; torch on one thread and on torch's default threads, one pair per call and all
              the pairs in one call. The minimum over ``--repeats`` runs.
  agreement   mean EPE torch vs OpenCV on each CASME II pair (default parameters) and on demo crops (the
              onset -> K selected frames of demo clips, with the demo's own TV-L1 parameters); EPE of each
              backend against the IPOL reference flows
  ingest      wall time of the demo dataset's ingest (in process, one sample after another) with each
              backend, and its TV-L1 stage seconds

    python benchmarks/tvl1_backends.py
    python benchmarks/tvl1_backends.py --repeats 1 --no-ingest

``benchmarks/gpu_tvl1.py`` runs the same measurements on a CUDA GPU (its functions come from here).
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._common import SHARED_DATA, LoadSampler, scratch_dir, table, write_results  # noqa: E402
from benchmarks._inputs import DEMO_DEFAULTS, write_bench_catalog  # noqa: E402

CASME_PAIRS = ("001_002", "001_003", "001_005", "001_010", "002_001", "002_003")  # those with an IPOL flow
BORDER = 10  # px: the largest difference is also given this far inside the image, away from the border
NUDGE = 1.01  # epsilon factor of the yardstick: OpenCV against itself with a 1% looser stopping test


def casme_pairs(data: Path = SHARED_DATA) -> tuple[list[str], np.ndarray, np.ndarray, list[np.ndarray]]:
    """Names, (N, H, W) first and second frames, and the IPOL reference flows of the CASME II pairs."""
    import cv2

    from stag_features.extract.flow import read_flo

    folder = data / "casme2_frames"
    read = lambda name: cv2.imread(str(folder / f"{name}.jpg"), cv2.IMREAD_GRAYSCALE)  # noqa: E731
    if not (folder / "001.jpg").is_file():
        raise SystemExit(f"CASME II frames not found in {folder} (see ../shared/data/README.md)")
    firsts = np.stack([read(p.split("_")[0]) for p in CASME_PAIRS])
    seconds = np.stack([read(p.split("_")[1]) for p in CASME_PAIRS])
    return list(CASME_PAIRS), firsts, seconds, [read_flo(folder / "ipol_tvl1" / f"{p}.flo") for p in CASME_PAIRS]


def demo_catalog(folder: Path) -> Path:
    """A private catalog with the project's demo entry (its pipeline options) over shared generated frames."""
    return write_bench_catalog(folder, demo=DEMO_DEFAULTS)


def demo_crop_pairs(catalog: Path, n_clips: int) -> tuple[list[str], np.ndarray, np.ndarray, object]:
    """Onset -> selected crops of the first ``n_clips`` demo clips (decode, face, align, motion as the
    ingest does): names, (N, S, S) firsts and seconds, and the demo's pipeline config."""
    from stag_features.adapters import load_dataset
    from stag_features.extract.sample_pipeline import prepare_sample
    from stag_features.ingest.steps import resolve_dataset

    entry, config = resolve_dataset(catalog, "demo")
    names, firsts, seconds = [], [], []
    for record in load_dataset(entry).records[:n_clips]:
        prepared = prepare_sample(record, config)
        for k, crop in enumerate(prepared.selected_crops):
            names.append(f"{record.sample_id}#{k}")
            firsts.append(prepared.onset_crop)
            seconds.append(crop)
    return names, np.stack(firsts), np.stack(seconds), config


def run_pairs(firsts: np.ndarray, seconds: np.ndarray, config, batch: int) -> tuple[np.ndarray, float]:
    """Flows of every pair through ``flow.tvl1_flow_pairs``, ``batch`` pairs per call, and the wall seconds."""
    from stag_features.extract.flow import tvl1_flow_pairs

    started = time.perf_counter()
    flows = [tvl1_flow_pairs(firsts[i:i + batch], seconds[i:i + batch], config) for i in range(0, len(firsts), batch)]
    return np.concatenate(flows), time.perf_counter() - started


def timed_pairs(firsts, seconds, config, batch: int, repeats: int) -> tuple[np.ndarray, float, list[float]]:
    """``run_pairs`` ``repeats`` times: flows, the least seconds per pair, every run's seconds per pair."""
    runs = []
    for _ in range(repeats):
        flows, seconds_taken = run_pairs(firsts, seconds, config, batch)
        runs.append(seconds_taken / len(firsts))
    return flows, min(runs), runs


def agreement_rows(names: list[str], torch_flows: np.ndarray, opencv_flows: np.ndarray,
                   references: list[np.ndarray] | None = None, nudged: np.ndarray | None = None) -> list[dict]:
    """Per pair: mean EPE torch vs OpenCV, the largest difference (anywhere, and more than ``BORDER`` px
    inside the image), its 99th percentile, the flow's magnitude, each backend's EPE to a reference,
    and the EPE between OpenCV and OpenCV with epsilon 1% larger (``nudged``): how far the stopping
    test alone moves the flow."""
    from stag_features.extract.flow import endpoint_error

    rows = []
    for i, name in enumerate(names):
        apart = np.hypot(*(torch_flows[i] - opencv_flows[i]))  # (H, W) px
        row = {"pair": name, "epe_torch_vs_opencv": endpoint_error(torch_flows[i], opencv_flows[i]),
               "max_px": float(apart.max()), "max_inside_px": float(apart[BORDER:-BORDER, BORDER:-BORDER].max()),
               "p99_px": float(np.percentile(apart, 99)), "magnitude": float(np.hypot(*opencv_flows[i]).mean())}
        if references is not None:
            row["epe_opencv_vs_ipol"] = endpoint_error(opencv_flows[i], references[i])
            row["epe_torch_vs_ipol"] = endpoint_error(torch_flows[i], references[i])
        if nudged is not None:
            row["epe_opencv_vs_epsilon_1pct"] = endpoint_error(nudged[i], opencv_flows[i])
        rows.append(row)
    return rows


def nudged_flows(firsts: np.ndarray, seconds: np.ndarray, config) -> np.ndarray:
    """OpenCV's flows with epsilon 1% larger than ``config``'s (the yardstick of ``agreement_rows``)."""
    return run_pairs(firsts, seconds, config.model_copy(update={"backend": "opencv",
                                                                "epsilon": config.epsilon * NUDGE}), 1)[0]


def demo_ingest(catalog: Path, folder: Path, backend: str, device: str) -> dict:
    """The demo dataset ingested in this process (``ingest_in_process``) into a fresh store with
    ``tvl1.backend`` = ``backend``: wall seconds, TV-L1 stage seconds, samples ok / failed."""
    from stag_features.ingest.producers import producer_for
    from stag_features.ingest.steps import ingest_in_process, resolve_dataset

    entry, config = resolve_dataset(catalog, "demo")
    entry = entry.model_copy(update={"store": str(folder / f"demo_{backend}.zarr")})
    config = config.with_overrides(tvl1={"backend": backend, "device": device})
    summary = ingest_in_process(entry, producer_for(entry, config), force=True)
    stages = summary.stage_seconds()
    return {"backend": backend, "device": device, "wall_s": summary.wall_seconds, "tvl1_s": stages.get("tvl1", 0.0),
            "ok": summary.count("ok"), "failed": summary.count("failed"), "pairs": config.selection.k * summary.count("ok")}


def main(argv: list[str] | None = None) -> int:
    import cv2
    import torch

    from schemas.motion_config import TVL1Config

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=2, help="runs of each speed measurement (the least counts)")
    parser.add_argument("--demo-clips", type=int, default=4, help="demo clips whose crops are compared")
    parser.add_argument("--no-ingest", action="store_true", help="skip the two demo ingests")
    args = parser.parse_args(argv)
    cv2.setNumThreads(1)
    default_threads = torch.get_num_threads()
    names, firsts, seconds, references = casme_pairs()
    opencv, torch_one, torch_default = (TVL1Config(), TVL1Config(backend="torch", device="cpu"),
                                        TVL1Config(backend="torch", device="cpu", torch_threads=0))
    figures: dict = {"pairs": len(names), "pair_size": list(firsts.shape[1:]), "torch_default_threads": default_threads}
    with LoadSampler() as load:
        speed = []
        opencv_flows, best, runs = timed_pairs(firsts, seconds, opencv, 1, args.repeats)
        speed.append({"backend": "opencv", "threads": 1, "batch": 1, "s_per_pair": best, "runs": runs})
        torch_flows = None
        for config, threads in ((torch_one, 1), (torch_default, default_threads)):
            for batch in (1, len(names)):
                flows, best, runs = timed_pairs(firsts, seconds, config, batch, args.repeats)
                torch_flows = flows if torch_flows is None else torch_flows
                speed.append({"backend": "torch", "threads": threads, "batch": batch, "s_per_pair": best, "runs": runs})
                print(f"torch, {threads} thread(s), {batch} pair(s) per call: {best:.3f} s per pair", flush=True)
        for row in speed:
            row["vs_opencv"] = row["s_per_pair"] / speed[0]["s_per_pair"]
        figures["speed"] = speed
        figures["casme2"] = agreement_rows(names, torch_flows, opencv_flows, references,
                                           nudged_flows(firsts, seconds, opencv))
        folder = scratch_dir("tvl1-backends")
        catalog = demo_catalog(folder)
        demo_names, demo_firsts, demo_seconds, demo_config = demo_crop_pairs(catalog, args.demo_clips)
        k, demo_speed, demo_flows = demo_config.selection.k, [], {}
        demo_torch_config = demo_config.tvl1.model_copy(update={"backend": "torch", "device": "cpu"})
        for config, batch in ((demo_config.tvl1, 1), (demo_torch_config, 1), (demo_torch_config, k)):
            flows, best, runs = timed_pairs(demo_firsts, demo_seconds, config, batch, args.repeats)
            demo_flows[config.backend, batch] = flows
            demo_speed.append({"backend": config.backend, "threads": 1, "batch": batch, "s_per_pair": best,
                               "runs": runs, "vs_opencv": best / (demo_speed[0]["s_per_pair"] if demo_speed else best)})
        figures["demo_speed"] = demo_speed
        figures["demo_crop_size"] = list(demo_firsts.shape[1:])
        figures["demo_crops"] = agreement_rows(demo_names, demo_flows["torch", k], demo_flows["opencv", 1], None,
                                               nudged_flows(demo_firsts, demo_seconds, demo_config.tvl1))
        figures["demo_tvl1"] = demo_config.tvl1.model_dump(mode="json", by_alias=True)
        if not args.no_ingest:
            figures["ingest"] = [demo_ingest(catalog, folder, backend, "cpu") for backend in ("opencv", "torch")]
    print(table([{k: v for k, v in r.items() if k != "runs"} for r in figures["speed"]]))
    print(table(figures["casme2"]))
    print(table(figures["demo_crops"]))
    for row in figures.get("ingest", []):
        print(f"demo ingest, {row['backend']}: {row['wall_s']:.1f} s ({row['tvl1_s']:.1f} s TV-L1, {row['ok']} ok, "
              f"{row['failed']} failed)")
    write_results("tvl1_backends", figures, load, notes=[
        "seconds per pair include the DIS initial flow (OpenCV, CPU, one thread) for both backends",
        "torch threads: 1 = tvl1.torch_threads default; the default-threads rows use torch's own setting"])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
