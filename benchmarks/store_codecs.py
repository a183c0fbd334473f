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
   sample, one at a time; the fastest of ``--repeats`` rounds that go over all
   codecs in turn; page cache warm, i.e. decode cost rather than disk). Codecs, each a StoreConfig setting built by the writer's
   own mapping: none, zstd 1 / 3 / 9, blosc-zstd 3, blosc-lz4 3 / 5 (blosc
   byte-shuffles float16 before compressing), and float32 flow with zstd 3
   (``flow_dtype: float32``).
   Reads are timed twice: one sample at a time through zarr (what xarray and
   Dask queries pay), and through the trainer's reader
   (``stag_features.store.StoreReader.read``, a batch of rows per array, which
   decodes ``bytes`` + ``zstd`` chunks itself and sends other codecs through
   zarr), when that module is present.
3. The same codec comparison on features of real video clips (``--real-clips``),
   replicated the same way: the demo's flow carries synthetic sensor noise,
   real flow is smoother and may compress differently.

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
# two of the real clips (about 7 s of extraction each): smooth real flow may compress unlike the demo's noisy flow
REAL_CODEC_CLIPS = ("single_face", "face_noface_0_60")
TRAINER_BATCH = 32  # TrainConfig.batch_size: the trainer's reader reads a batch of rows per array


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
    """Every trial's codecs, made by the writer from a StoreConfig (so each is a setting users can pick)."""
    from schemas.store_config import StoreConfig
    from stag_features.store.writer import _compressors  # the writer's own mapping from StoreConfig to codecs

    settings = {"none": ("none", 3), **{f"zstd-{lvl}": ("zstd", lvl) for lvl in (1, 3, 9)},
                "blosc-zstd-3": ("blosc-zstd", 3), "blosc-lz4-3": ("blosc-lz4", 3), "blosc-lz4-5": ("blosc-lz4", 5)}
    return {label: _compressors(StoreConfig(compressor=name, compression_level=level))
            for label, (name, level) in settings.items()}


def write_codec_store(values: dict[str, np.ndarray], compressors: tuple, folder: Path) -> dict:
    """``values`` written one sample per chunk with ``compressors`` into a fresh group: sizes and write speed."""
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
    return {"bytes_per_sample": disk / n, "raw_bytes_per_sample": raw / n, "ratio": raw / disk,
            "write_mb_s": raw / 2**20 / write_s, "samples": n}


def read_pass_s(folder: Path, names: list[str], n: int) -> float:
    """Seconds to read every sample of every array, one sample at a time (as a streaming loader does)."""
    import zarr

    reader = zarr.open_group(str(folder), mode="r")
    t = time.perf_counter()
    for i in range(n):
        for name in names:
            np.asarray(reader[name][i])
    return time.perf_counter() - t


def trainer_read_pass_s(folder: Path, names: list[str], n: int, batch: int) -> float | None:
    """Seconds for the trainer's reader (``StoreReader.read``: one read per array per batch; bytes + zstd /
    blosc chunks decoded directly, other codecs through zarr) to read every sample."""
    from stag_features.store import StoreReader

    reader = StoreReader(folder)
    rows = np.arange(n)
    t = time.perf_counter()
    for start in range(0, n, batch):
        for name in names:
            reader.read(name, rows[start:start + batch])
    return time.perf_counter() - t


def codec_trials(store: Path, folder: Path, repeats: int) -> list[dict]:
    """Every codec (float16 flow) and zstd-3 with float32 flow on the trainer's arrays of ``store``.

    Read passes go round-robin over the codecs, ``repeats`` rounds, and each codec keeps its fastest
    pass: a burst of load on a shared machine then slows one round of every codec, not one codec.
    """
    import zarr

    group = zarr.open_group(str(store), mode="r")
    values16 = {a: np.asarray(group[a][:]) for a in TRAINER_ARRAYS}
    values32 = {a: (v.astype(np.float32) if a in FLOW_DTYPE_ARRAYS else v) for a, v in values16.items()}
    settings = [(label, "float16", comps, values16) for label, comps in codecs().items()]
    settings.append(("zstd-3", "float32", codecs()["zstd-3"], values32))
    trials = []
    for label, dtype, comps, values in settings:
        written = write_codec_store(values, comps, folder / f"codec_{label}_{dtype}")
        trials.append({"codec": label, "flow_dtype": dtype, **written})
    best = [float("inf")] * len(trials)
    best_trainer = [float("inf")] * len(trials)
    for _ in range(repeats):
        for i, t in enumerate(trials):
            where = folder / f"codec_{t['codec']}_{t['flow_dtype']}"
            best[i] = min(best[i], read_pass_s(where, list(values16), t["samples"]))
            trainer = trainer_read_pass_s(where, list(values16), t["samples"], TRAINER_BATCH)
            best_trainer[i] = min(best_trainer[i], trainer if trainer is not None else float("inf"))
    for t, seconds, trainer in zip(trials, best, best_trainer):
        t.update(read_samples_s=t["samples"] / seconds, read_mb_s=t["raw_bytes_per_sample"] * t["samples"] / 2**20 / seconds)
        if trainer < float("inf"):
            t["trainer_read_samples_s"] = t["samples"] / trainer
        print(f"  {t['codec']} ({t['flow_dtype']}): {t['bytes_per_sample'] / 2**20:.3f} MiB/sample, read "
              f"{t['read_samples_s']:.0f} samples/s (zarr), {t.get('trainer_read_samples_s', float('nan')):.0f} "
              "(trainer's reader)", flush=True)
    return trials


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--samples", type=int, default=32, help="samples in the pipeline-shaped store")
    parser.add_argument("--real-clips", nargs="*", default=list(REAL_CODEC_CLIPS),
                        help="real clips (benchmarks._inputs.REAL_CLIPS) whose features make a second codec store; "
                        "none: skip")
    parser.add_argument("--repeats", type=int, default=7, help="read rounds over every codec (the fastest counts)")
    parser.add_argument("--scratch", type=Path, default=None)
    parser.add_argument("--name", default="store_codecs")
    args = parser.parse_args(argv)

    import zarr

    from benchmarks._stores import composite_store, extract_demo_features, extract_real_features, replicated_store

    scratch = scratch_dir("codecs", args.scratch)
    figures: dict = {}
    with LoadSampler() as load:
        config, features = extract_demo_features({}, 2, scratch)
        t = time.perf_counter()
        pipeline = replicated_store(scratch / "pipeline.zarr", config, features, args.samples)
        figures["pipeline_write_s_per_sample"] = (time.perf_counter() - t) / args.samples
        composite, _ = composite_store(scratch)  # its own copy: the shared one may be in use by other benchmarks
        for name, path in (("pipeline", pipeline), ("composite", composite)):
            n, rows = bytes_by_array(path)
            total = sum(r["disk_bytes_per_sample"] for r in rows)
            figures[f"{name}_bytes"] = {"samples": n, "total_disk_bytes_per_sample": total, "rows": rows,
                                        "store_config": dict(zarr.open_group(str(path), mode="r").attrs["store_config"])}
            print(f"\n{name} store ({n} samples): {total / 2**20:.3f} MiB per sample on disk")
            print(table([r for r in rows if r["disk_bytes_per_sample"] >= 64], None, "{:.1f}"))
        print("\ncodecs, demo-clip features:")
        figures["codec_trials"] = codec_trials(pipeline, scratch / "demo", args.repeats)
        if args.real_clips:
            real_config, real_features = extract_real_features({}, args.real_clips)
            real = replicated_store(scratch / "real.zarr", real_config, real_features, args.samples)
            print(f"\ncodecs, real-clip features ({', '.join(args.real_clips)}):")
            figures["codec_trials_real"] = codec_trials(real, scratch / "real", args.repeats)
            figures["real_clips"] = list(args.real_clips)
    for key in ("codec_trials", "codec_trials_real"):
        if key in figures:
            print(f"\n{key}: codecs on the trainer's arrays (per sample)")
            print(table(figures[key], ["codec", "flow_dtype", "bytes_per_sample", "ratio", "write_mb_s",
                                       "read_samples_s", "trainer_read_samples_s", "read_mb_s"], "{:.2f}"))
    figures["scratch"] = str(scratch)
    write_results(args.name, figures, load, notes=[
        "pipeline store: real demo-clip features (default PipelineConfig) committed N times by write_sample",
        "real store: features of real video clips (default PipelineConfig) committed N times by write_sample",
        "codec trials: trainer arrays rewritten with one sample per chunk; read = every sample, fastest of rounds "
        "over all codecs, warm page cache; read_samples_s through zarr one sample at a time, trainer_read_samples_s "
        "through stag_features.store.StoreReader.read in batches of 32",
    ])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
