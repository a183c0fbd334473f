"""Ingest cost per clip by stage: where the time goes (issue 8, item 1).

Runs the real per-sample chain (``stag_features.extract.sample_pipeline.extract_sample``)
serially in this process on each clip, then commits the result with the real
writer (``stag_features.store.slots.write_sample``) into a scratch store. Stage
times come from ``SampleFeatures.timings``; ``write`` is timed around
``write_sample``.

The ``align`` stage of the pipeline includes face detection on every frame
(the onset's detection and landmarks, then a windowed re-detection per frame
to check the subject stays in view). To show how it splits, the script
re-runs those pieces on the same frames afterwards (``align`` sub-rows:
``onset_detect``, ``per_frame_detect``, ``warp``, ``head_motion``); these are
a second measurement, not part of the total.

Clips: the real videos (windows, see ``benchmarks/_common.py``) with the
default PipelineConfig, and the first clips of the synthetic demo set with the
demo entry's own pipeline overrides (crop 128, K = 4, fast TV-L1), read
from its PNG frame folders like any frame-folder dataset.

    python benchmarks/ingest_stages.py                         # all real clips + 6 demo clips
    python benchmarks/ingest_stages.py --clips single_face --demo 2
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._common import LoadSampler, peak_rss_mb, scratch_dir, table, write_results  # noqa: E402
from benchmarks._inputs import DEMO_DEFAULTS, REAL_CLIPS, resolve_clip, write_bench_catalog  # noqa: E402

STAGES = ("decode", "face", "align", "motion", "tvl1", "strain", "rois", "aus", "graph", "write")


def _store_for(path: Path, config, schemes: dict[str, tuple[str, ...]]) -> str:
    from stag_features.ingest.producers import PipelineProducer, pipeline_layout
    from stag_features.store.identity import StoreIdentity
    from stag_features.store.writer import ensure_store

    identity = StoreIdentity(dataset="bench", producer=PipelineProducer.kind, config=config.provenance(),
                             config_hash=config.config_hash(), layout=pipeline_layout(config, schemes),
                             store_config=config.store, flow_units=PipelineProducer.flow_units)
    ensure_store(path, identity)
    return str(path)


def align_breakdown(frames, config, backend) -> dict[str, float]:
    """The align stage's pieces re-run on the same frames (seconds)."""
    import numpy as np

    from stag_features.extract.align import canonical_transform, head_motion, warp_to_crop
    from stag_features.extract.face import detect_near, detect_subject

    out: dict[str, float] = {}
    t = time.perf_counter()
    onset = detect_subject(frames[0], backend, config.face)
    out["onset_detect"] = time.perf_counter() - t
    if onset is None:
        return out
    t = time.perf_counter()
    transform = canonical_transform(onset.landmarks, config.align)
    crops = np.stack([warp_to_crop(f, transform, config.align.crop_size) for f in frames])
    out["warp"] = time.perf_counter() - t
    t = time.perf_counter()
    for frame in frames[1:]:
        detect_near(frame, backend, config.face, onset)
    out["per_frame_detect"] = time.perf_counter() - t
    t = time.perf_counter()
    head_motion(crops, 0, config.align.head_motion_window)
    out["head_motion"] = time.perf_counter() - t
    return out


def measure(record, config, backend, store: str, slot: int) -> dict:
    """One clip: stage seconds, totals, K and T."""
    from stag_features.extract.sample_pipeline import extract_sample, load_frames
    from stag_features.store.slots import write_sample

    started = time.perf_counter()
    features = extract_sample(record, config, backend=backend)
    t = time.perf_counter()
    write_sample(store, slot, features, features.input_hash)
    timings = dict(features.timings)
    timings["write"] = time.perf_counter() - t
    wall = time.perf_counter() - started
    frames, _, _ = load_frames(record, None)
    row = {"clip": record.clip, "T": len(features.frame_numbers), "K": len(features.selected_frames),
           "frame_px": f"{frames.shape[2]}x{frames.shape[1]}", "crop": config.align.crop_size,
           **{s: timings.get(s, 0.0) for s in STAGES}, "total": wall}
    row["tvl1_share"] = row["tvl1"] / wall
    row["tvl1_per_pair"] = row["tvl1"] / row["K"]
    row["align_parts"] = align_breakdown(frames, config, backend)
    return row


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clips", nargs="*", default=list(REAL_CLIPS), help=f"real clips ({', '.join(REAL_CLIPS)})")
    parser.add_argument("--demo", type=int, default=6, help="number of demo clips (0 = none)")
    parser.add_argument("--scratch", type=Path, default=None, help="scratch folder (default: a new temp folder)")
    parser.add_argument("--name", default="ingest_stages", help="results file name")
    args = parser.parse_args(argv)

    from schemas.catalog import load_catalog
    from schemas.pipeline_config import PipelineConfig
    from stag_features.adapters import load_dataset
    from stag_features.extract.face import make_backend
    from stag_features.ingest.steps import entry_pipeline_config
    from stag_features.store.writer import allocate_slots

    scratch = scratch_dir("stages", args.scratch)
    rows: list[dict] = []
    with LoadSampler() as load:
        t = time.perf_counter()
        default = PipelineConfig()
        backend = make_backend(default.face)
        backend_s = time.perf_counter() - t
        if args.clips:
            store = _store_for(scratch / "real.zarr", default, {"bench": ("unknown",)})
            records = [resolve_clip(name).record() for name in args.clips]
            slots = allocate_slots(store, [r.sample_id for r in records])
            for record in records:
                row = measure(record, default, backend, store, slots[record.sample_id])
                row["set"] = "real"
                rows.append(row)
                print(f"  {record.clip}: {row['total']:.2f} s (tvl1 {row['tvl1']:.2f} s)", flush=True)
        if args.demo:
            catalog = write_bench_catalog(scratch, demo={**DEMO_DEFAULTS, "n_subjects": -(-args.demo // 5),
                                                         "clips_per_emotion": 1})
            entry = load_catalog(catalog).get("demo")
            t = time.perf_counter()
            demo_records = load_dataset(entry).records[: args.demo]
            generate_s = time.perf_counter() - t
            config = entry_pipeline_config(entry)
            store = _store_for(scratch / "demo.zarr", config, {"demo": ("x",)})
            slots = allocate_slots(store, [r.sample_id for r in demo_records])
            for record in demo_records:
                row = measure(record, config, backend, store, slots[record.sample_id])
                row["set"] = "demo"
                rows.append(row)
                print(f"  {record.clip}: {row['total']:.2f} s (tvl1 {row['tvl1']:.2f} s)", flush=True)
    columns = ["set", "clip", "T", "K", "crop", *STAGES, "total", "tvl1_share"]
    print("\nIngest cost per clip by stage (seconds; serial, one process)")
    print(table(rows, columns, "{:.3f}"))
    print("\nalign stage re-run in pieces (seconds)")
    print(table([{"clip": r["clip"], **r["align_parts"]} for r in rows], None, "{:.3f}"))
    summary = {}
    for name in ("real", "demo"):
        part = [r for r in rows if r["set"] == name]
        if part:
            total = sum(r["total"] for r in part)
            summary[name] = {"clips": len(part), "total_s": total,
                             "share_by_stage": {s: sum(r[s] for r in part) / total for s in STAGES},
                             "tvl1_seconds_per_pair": sum(r["tvl1"] for r in part) / sum(r["K"] for r in part),
                             "seconds_per_clip": total / len(part)}
    for name, s in summary.items():
        shares = ", ".join(f"{k} {v:.1%}" for k, v in s["share_by_stage"].items() if v >= 0.005)
        print(f"{name}: {s['seconds_per_clip']:.2f} s/clip; {shares}")
    figures = {"rows": rows, "summary": summary, "backend_load_s": backend_s, "peak_rss_mb_process": peak_rss_mb(),
               "scratch": str(scratch)}
    if args.demo:
        figures["demo_generation_s"] = generate_s
    write_results(args.name, figures, load, notes=[
        "stage seconds from SampleFeatures.timings; write timed around write_sample; total = extract + write",
        "align includes face detection on every frame; align_parts re-runs its pieces (a second measurement)",
        "face = landmarks on the aligned apex crop (the backend is built once, backend_load_s)",
        "real clips: default PipelineConfig; demo clips: the demo catalog entry's pipeline overrides",
    ])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
