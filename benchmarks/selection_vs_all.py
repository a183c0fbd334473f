"""Selection first vs TV-L1 on every frame (issue 8, item 2).

stag ranks every frame with a cheap flow (DIS at 112 px) and runs TV-L1 only
on the K selected frames. The alternative is TV-L1 from the onset to every
frame, then choosing frames from that. Per clip this script measures:

  pairs        TV-L1 pairs: K (stag) vs T - 1 (every frame)
  stag_s       stag's whole per-sample time: extract_sample + write_sample
  stag_tvl1_s  the TV-L1 part of it (K pairs)
  overhead     (stag_s - stag_tvl1_s) / stag_tvl1_s: what the pipeline spends above
               the TV-L1 it must run anyway (target <= 15%)
  all_tvl1_s   TV-L1 on every frame of the same aligned crops, same parameters
  agreement    the K frames stag selects vs the K frames the same selection rule
               (``select_frames``, same apex rule) picks from a motion curve built
               from the every-frame TV-L1 flows (same statistic as the cheap curve:
               mean magnitude over the face mask after removing the median vector):
               exact overlap / K, overlap within +-1 frame / K, apex distance,
               Spearman correlation of the two curves, and the TV-L1 motion
               captured: mean TV-L1 curve over stag's K frames / over the
               every-frame choice (1.0 = as discriminative)

    python benchmarks/selection_vs_all.py                             # 2 real clips + 4 demo clips
    python benchmarks/selection_vs_all.py --clips single_face --demo 0
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._common import LoadSampler, scratch_dir, table, write_results  # noqa: E402
from benchmarks._inputs import DEMO_DEFAULTS, resolve_clip, write_bench_catalog  # noqa: E402
from benchmarks.ingest_stages import _store_for  # noqa: E402


def tvl1_curve(flows: np.ndarray, landmarks: np.ndarray, config) -> np.ndarray:
    """Motion curve from full-size TV-L1 flows (T, 2, S, S), the cheap curve's statistic."""
    from stag_features.extract.motion import face_mask

    size = flows.shape[-1]
    mask = face_mask(landmarks, (size, size), config.motion.face_margin)
    curve = np.zeros(len(flows), dtype=np.float64)
    for t, flow in enumerate(flows):
        f = flow[:, mask]
        if config.motion.remove_head_translation:
            f = f - np.median(f, axis=1, keepdims=True)
        magnitude = np.sqrt(f[0] ** 2 + f[1] ** 2)
        curve[t] = magnitude.mean() if config.motion.statistic == "mean" else np.percentile(magnitude, 90)
    return curve


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    ra, rb = np.argsort(np.argsort(a)), np.argsort(np.argsort(b))
    return float(np.corrcoef(ra, rb)[0, 1])


def compare(record, config, backend, store: str, slot: int) -> dict:
    from stag_features.extract.align import align_clip
    from stag_features.extract.flow import make_tvl1, tvl1_flow
    from stag_features.extract.motion import estimate_apex, rank_frames
    from stag_features.extract.sample_pipeline import extract_sample, load_frames
    from stag_features.extract.selection import select_frames
    from stag_features.store.slots import write_sample

    started = time.perf_counter()
    features = extract_sample(record, config, backend=backend)
    write_sample(store, slot, features, features.input_hash)
    stag_s = time.perf_counter() - started
    stag_tvl1 = features.timings["tvl1"]

    frames, positions, _skipped = load_frames(record, None)
    aligned = align_clip(frames, config, backend, onset=0, sample=record.sample_id, positions=positions)
    crops = aligned.crops
    solver = make_tvl1(config.tvl1)
    flows = np.zeros((len(crops), 2, *crops.shape[1:]), dtype=np.float32)
    t = time.perf_counter()
    for i in range(1, len(crops)):
        flows[i] = tvl1_flow(crops[0], crops[i], config.tvl1, solver)
    all_tvl1 = time.perf_counter() - t

    curve = tvl1_curve(flows, aligned.landmarks_onset, config)
    apex = features.apex_annotated if features.apex_annotated >= 0 else estimate_apex(curve, config.motion.smooth_frames)
    chosen_all = select_frames(rank_frames(curve), apex, config.selection, onset=0)
    chosen = np.asarray(features.selected_frames)
    k = len(chosen)
    exact = len(set(chosen.tolist()) & set(chosen_all.tolist())) / k
    near = sum(bool(np.any(np.abs(chosen_all - p) <= 1)) for p in chosen) / k
    captured = float(curve[chosen].mean() / max(curve[chosen_all].mean(), 1e-12))
    return {
        "clip": record.clip, "T": len(crops), "K": k, "crop": config.align.crop_size,
        "pairs_stag": k, "pairs_all": len(crops) - 1,
        "stag_s": stag_s, "stag_tvl1_s": stag_tvl1, "overhead": (stag_s - stag_tvl1) / stag_tvl1,
        "all_tvl1_s": all_tvl1, "all_over_stag": all_tvl1 / stag_s,
        "tvl1_s_per_pair_all": all_tvl1 / (len(crops) - 1), "tvl1_s_per_pair_stag": stag_tvl1 / k,
        "overlap_exact": exact, "overlap_pm1": near,
        "apex_stag": int(features.apex_estimated), "apex_tvl1": int(estimate_apex(curve, config.motion.smooth_frames)),
        "apex_annotated": int(features.apex_annotated),
        "spearman_curves": spearman(np.asarray(features.motion_curve, dtype=np.float64), curve),
        "tvl1_motion_captured": captured,
        "selected_stag": chosen.tolist(), "selected_all": chosen_all.tolist(),
        "timings": features.timings,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clips", nargs="*", default=["single_face", "wolfgang_0_90"], help="real clips")
    parser.add_argument("--demo", type=int, default=4, help="demo clips (0 = none)")
    parser.add_argument("--scratch", type=Path, default=None)
    parser.add_argument("--name", default="selection_vs_all")
    args = parser.parse_args(argv)

    from schemas.catalog import load_catalog
    from schemas.pipeline_config import PipelineConfig
    from stag_features.adapters import load_dataset
    from stag_features.extract.face import make_backend
    from stag_features.ingest.steps import entry_pipeline_config
    from stag_features.store.writer import allocate_slots

    scratch = scratch_dir("selection", args.scratch)
    rows = []
    with LoadSampler() as load:
        default = PipelineConfig()
        backend = make_backend(default.face)
        jobs = []
        if args.clips:
            store = _store_for(scratch / "real.zarr", default, {"bench": ("unknown",)})
            records = [resolve_clip(c).record() for c in args.clips]
            slots = allocate_slots(store, [r.sample_id for r in records])
            jobs += [("real", r, default, store, slots[r.sample_id]) for r in records]
        if args.demo:
            catalog = write_bench_catalog(scratch, demo={**DEMO_DEFAULTS, "n_subjects": -(-args.demo // 5),
                                                         "clips_per_emotion": 1})
            entry = load_catalog(catalog).get("demo")
            records = load_dataset(entry).records[: args.demo]
            config = entry_pipeline_config(entry)
            store = _store_for(scratch / "demo.zarr", config, {"demo": ("x",)})
            slots = allocate_slots(store, [r.sample_id for r in records])
            jobs += [("demo", r, config, store, slots[r.sample_id]) for r in records]
        for kind, record, config, store, slot in jobs:
            row = {"set": kind, **compare(record, config, backend, store, slot)}
            rows.append(row)
            print(f"  {row['clip']}: stag {row['stag_s']:.2f} s ({row['pairs_stag']} pairs), every frame "
                  f"{row['all_tvl1_s']:.2f} s ({row['pairs_all']} pairs), overlap {row['overlap_exact']:.2f}", flush=True)
    columns = ["set", "clip", "T", "K", "pairs_all", "stag_s", "stag_tvl1_s", "overhead", "all_tvl1_s", "all_over_stag",
               "overlap_exact", "overlap_pm1", "apex_stag", "apex_tvl1", "spearman_curves", "tvl1_motion_captured"]
    print("\nSelection first vs TV-L1 on every frame (seconds per clip)")
    print(table(rows, columns, "{:.2f}"))
    summary = {}
    for kind in ("real", "demo"):
        part = [r for r in rows if r["set"] == kind]
        if not part:
            continue
        stag = sum(r["stag_s"] for r in part)
        tvl1 = sum(r["stag_tvl1_s"] for r in part)
        summary[kind] = {
            "clips": len(part), "pairs_stag": sum(r["pairs_stag"] for r in part),
            "pairs_all": sum(r["pairs_all"] for r in part), "stag_s": stag, "stag_tvl1_s": tvl1,
            "overhead_pooled": (stag - tvl1) / tvl1, "all_tvl1_s": sum(r["all_tvl1_s"] for r in part),
            "all_over_stag": sum(r["all_tvl1_s"] for r in part) / stag,
            "overlap_exact_mean": float(np.mean([r["overlap_exact"] for r in part])),
            "overlap_pm1_mean": float(np.mean([r["overlap_pm1"] for r in part])),
            "tvl1_motion_captured_mean": float(np.mean([r["tvl1_motion_captured"] for r in part])),
        }
        s = summary[kind]
        print(f"{kind}: {s['pairs_stag']} vs {s['pairs_all']} TV-L1 pairs; every-frame TV-L1 takes "
              f"{s['all_over_stag']:.1f}x stag's whole time; overhead above TV-L1 {s['overhead_pooled']:.1%}; "
              f"overlap {s['overlap_exact_mean']:.2f} exact, {s['overlap_pm1_mean']:.2f} within 1 frame; "
              f"TV-L1 motion captured {s['tvl1_motion_captured_mean']:.2f}")
    write_results(args.name, {"rows": rows, "summary": summary, "scratch": str(scratch)}, load, notes=[
        "stag_s = extract_sample + write_sample for one clip, serial, one process, landmark backend built once",
        "all_tvl1_s = TV-L1 onset -> every frame on the same aligned crops with the same TV-L1 config",
        "agreement: same select_frames rule applied to a curve from the every-frame TV-L1 flows",
    ])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
