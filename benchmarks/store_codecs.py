"""Store size and codec choice (issue 8, item 8).

1. Bytes per sample by array, as the writer stores them (the default
   StoreConfig: float16 flow, zstd level 3), in two stores written by the real
   writer: a pipeline-shaped store (default PipelineConfig: K = 8, 224 px flow;
   real demo-clip features replicated, see benchmarks/_stores.py) and the MEGC
   2019 composite (K = 1, 28 x 28). On-disk bytes are the chunk files under
   each array's folder (metadata excluded), divided by the samples.
2. Codec comparison on the arrays the trainer reads (flow, strain,
   roi_patches, roi_stats, au_activation, edge_weight) of the pipeline store:
   the same values rewritten with the store's chunking (one sample per chunk)
   under each codec; bytes per sample, write and read throughput (read: every
   sample, best of ``--repeats`` passes, page cache warm, i.e. decode cost
   rather than disk). Codecs: none, zstd 1 / 3 / 9 (the store's ZstdCodec),
   blosc-zstd 3 (the store's option), blosc-lz4 (not a StoreConfig option; a
   candidate), and float32 flow with zstd 3 (``flow_dtype: float32``).

    python benchmarks/store_codecs.py
    python benchmarks/store_codecs.py --samples 16 --repeats 1
"""
from __future__ import annotations

import argparse
import shutil
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._common import LoadSampler, scratch_dir, table, write_results  # noqa: E402

TRAINER_ARRAYS = ("flow", "strain", "roi_patches", "roi_stats", "au_activation", "edge_weight")
FLOW_DTYPE_ARRAYS = ("flow", "strain", "roi_patches")


def bytes_by_array(path: Path) -> tuple[int, list[dict]]:
    """(committed samples, rows of on-disk and raw bytes per sample for every per-sample array)."""
    import zarr

    from schemas.store_spec import SAMPLE_ARRAYS

    group = zarr.open_group(str(path), mode="r")
    n = int(np.asarray(group["committed"][:], dtype=bool).sum())
    rows = []
    for spec in SAMPLE_ARRAYS:
        folder = path / spec.name
        disk = sum(f.stat().st_size for f in folder.rglob("*") if f.is_file() and f.name != "zarr.json")
        array = group[spec.name]
        itemsize = array.dtype.itemsize if spec.dtype != "str" else None
        raw = int(np.prod(array.shape[1:], dtype=np.int64)) * itemsize if itemsize else None
        rows.append({"array": spec.name, "dtype": str(array.dtype) if itemsize else "str",
                     "shape": "x".join(map(str, array.shape[1:])) or "-", "disk_bytes_per_sample": disk / max(n, 1),
                     "raw_bytes_per_sample": raw if raw is not None else "", "ratio": (raw / (disk / n)) if raw and disk else ""})
    rows.sort(key=lambda r: -r["disk_bytes_per_sample"])
    return n, rows


def codecs() -> dict[str, tuple]:
    from zarr.codecs import BloscCodec

    from schemas.store_config import StoreConfig
    from stag_features.store import _compressors  # the writer's own mapping from StoreConfig to codecs

    out = {"none": (), **{f"zstd-{lvl}": _compressors(StoreConfig(compressor="zstd", compression_level=lvl))
                          for lvl in (1, 3, 9)}}
    out["blosc-zstd-3"] = _compressors(StoreConfig(compressor="blosc-zstd", compression_level=3))
    out["blosc-lz4-5"] = (BloscCodec(cname="lz4", clevel=5, shuffle="shuffle"),)
    return out


def codec_trial(values: dict[str, np.ndarray], compressors: tuple, folder: Path, repeats: int) -> dict:
    import zarr

    shutil.rmtree(folder, ignore_errors=True)
    group = zarr.open_group(str(folder), mode="w", zarr_format=3)
    n = len(next(iter(values.values())))
    arrays = {name: group.create_array(name, shape=v.shape, chunks=(1, *v.shape[1:]), dtype=v.dtype,
                                       compressors=compressors, fill_value=0) for name, v in values.items()}
    raw = sum(v.nbytes for v in values.values())
    with zarr.config.set({"array.write_empty_chunks": True}):
        t = time.perf_counter()
        for i in range(n):
            for name, array in arrays.items():
                array[i] = values[name][i]
        write_s = time.perf_counter() - t
    disk = sum(f.stat().st_size for f in folder.rglob("*") if f.is_file() and f.name != "zarr.json")
    reader = zarr.open_group(str(folder), mode="r")
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        for i in range(n):
            for name in values:
                np.asarray(reader[name][i])
        best = min(best, time.perf_counter() - t)
    return {"bytes_per_sample": disk / n, "raw_bytes_per_sample": raw / n, "ratio": raw / disk,
            "write_mb_s": raw / 2**20 / write_s, "read_samples_s": n / best, "read_mb_s": raw / 2**20 / best}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--samples", type=int, default=32, help="samples in the pipeline-shaped store")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--scratch", type=Path, default=None)
    parser.add_argument("--name", default="store_codecs")
    args = parser.parse_args(argv)

    import zarr

    from benchmarks._stores import composite_store, extract_demo_features, replicated_store

    scratch = scratch_dir("codecs", args.scratch)
    figures: dict = {}
    with LoadSampler() as load:
        config, features = extract_demo_features({}, 2, scratch)
        t = time.perf_counter()
        pipeline = replicated_store(scratch / "pipeline.zarr", config, features, args.samples)
        figures["pipeline_write_s_per_sample"] = (time.perf_counter() - t) / args.samples
        composite, _ = composite_store()
        for name, path in (("pipeline", pipeline), ("composite", composite)):
            n, rows = bytes_by_array(path)
            total = sum(r["disk_bytes_per_sample"] for r in rows)
            figures[f"{name}_bytes"] = {"samples": n, "total_disk_bytes_per_sample": total, "rows": rows,
                                        "store_config": dict(zarr.open_group(str(path), mode="r").attrs["store_config"])}
            print(f"\n{name} store ({n} samples): {total / 2**20:.3f} MiB per sample on disk")
            print(table([r for r in rows if r["disk_bytes_per_sample"] >= 64], None, "{:.1f}"))
        group = zarr.open_group(str(pipeline), mode="r")
        values16 = {a: np.asarray(group[a][:]) for a in TRAINER_ARRAYS}
        values32 = {a: (v.astype(np.float32) if a in FLOW_DTYPE_ARRAYS else v) for a, v in values16.items()}
        trials = []
        for label, comps in codecs().items():
            r = codec_trial(values16, comps, scratch / f"codec_{label}", args.repeats)
            trials.append({"codec": label, "flow_dtype": "float16", **r})
            print(f"  {label}: {r['bytes_per_sample'] / 2**20:.3f} MiB/sample, read {r['read_samples_s']:.0f} samples/s",
                  flush=True)
        r = codec_trial(values32, codecs()["zstd-3"], scratch / "codec_zstd-3_f32", args.repeats)
        trials.append({"codec": "zstd-3", "flow_dtype": "float32", **r})
        figures["codec_trials"] = trials
    print("\nCodecs on the trainer's arrays of the pipeline store (per sample)")
    print(table(trials, ["codec", "flow_dtype", "bytes_per_sample", "ratio", "write_mb_s", "read_samples_s", "read_mb_s"],
                "{:.2f}"))
    figures["scratch"] = str(scratch)
    write_results(args.name, figures, load, notes=[
        "pipeline store: real demo-clip features (default PipelineConfig) committed N times by write_sample",
        "codec trials: trainer arrays rewritten with one sample per chunk; read = every sample, best of repeats, "
        "warm page cache",
    ])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
