"""BENCHMARKS.md section 8 (store size and codecs), rendered by
`benchmarks/report.py`: bytes per sample by array, read throughput per codec
and the verdict that justifies the default."""
from __future__ import annotations

from benchmarks._report_common import f, load, md_table


def section_codecs(doc: dict) -> list[str]:
    fig = doc["figures"]
    out = []
    for name in ("pipeline", "composite"):
        b = fig.get(f"{name}_bytes")
        if not b:
            continue
        sc = b["store_config"]
        out += ["", f"**{name} store** ({b['samples']} samples; flow {sc['flow_dtype']}, {sc['compressor']} level "
                f"{sc['compression_level']}): {b['total_disk_bytes_per_sample'] / 2**20:.3f} MiB per sample on disk.", ""]
        rows = [[r["array"], r["dtype"], r["shape"], f(r["disk_bytes_per_sample"], "{:.0f}"),
                 f(r["raw_bytes_per_sample"]), f(r["ratio"], "{:.1f}")] for r in b["rows"] if r["disk_bytes_per_sample"] >= 200]
        out += md_table(["array", "dtype", "shape per sample", "bytes on disk", "bytes raw", "ratio"], rows)
        out.append("(arrays under 200 bytes per sample omitted)")
    default = store_default_label()
    sets = [(key, title) for key, title in (
        ("codec_trials", "features of demo clips (synthetic, with sensor noise)"),
        ("codec_trials_real", f"features of real video clips ({', '.join(fig.get('real_clips', []))})"))
        if fig.get(key)]
    for key, title in sets:
        trials = fig[key]
        base = next((t for t in trials if t["codec"] == default and t["flow_dtype"] == "float16"), None)
        out += ["", f"Codecs on the arrays the trainer reads, {title}; per sample, one sample per chunk "
                f"(the default, {default}, in bold):", ""]
        out += md_table(["codec", "flow dtype", "MiB per sample", "ratio", "bytes vs default", "write MB/s",
                         "zarr read samples/s", "vs default", "trainer's reader samples/s", "vs default"],
                        [[f"**{t['codec']}**" if t is base else t["codec"], t["flow_dtype"],
                          f(t["bytes_per_sample"] / 2**20, "{:.3f}"), f(t["ratio"]),
                          _rel(t["bytes_per_sample"], base and base["bytes_per_sample"]), f(t["write_mb_s"], "{:.0f}"),
                          f(t["read_samples_s"], "{:.0f}"), _rel(t["read_samples_s"], base and base["read_samples_s"]),
                          f(t.get("trainer_read_samples_s"), "{:.0f}"),
                          _rel(t.get("trainer_read_samples_s", 0), base and base.get("trainer_read_samples_s"))]
                         for t in trials])
    if sets:
        key, title = sets[-1]  # the verdict rests on real features when they were measured
        out += ["", *codec_verdict(fig[key], default, title)]
        for other, other_title in sets[:-1]:
            verdict = codec_verdict(fig[other], default, other_title)
            picked = next((line.split("**")[1] for line in verdict if line.startswith("| **")), None)
            if picked:
                out.append(f"The same rule on {other_title} picks {picked}.")
    return out


# Where stores are read from, as bandwidth (bytes/s) for the codec rule: page cache (decode cost only: a
# trainer streaming a local store epoch after epoch) and 1 Gb/s network storage (NFS, one object-store stream).
READ_PATHS = (("page cache", None), ("1 Gb/s network", 110e6))


def store_default_label() -> str:
    """The trial label of the writer's default StoreConfig, e.g. ``zstd-3`` or ``none``."""
    from schemas.store_config import StoreConfig

    sc = StoreConfig()
    return "none" if sc.compressor == "none" else f"{sc.compressor}-{sc.compression_level}"


def _streamed_from() -> str:
    """When pipeline stores stream rather than load once (from the loader benchmark and DataConfig)."""
    loader, _ = load("loader")
    row = loader and next((r for r in loader["figures"]["rows"] if r["store"] == "pipeline"), None)
    if not row:
        return ""
    from schemas.model_config import DataConfig

    limit = DataConfig.model_fields["keep_on_device_max_bytes"].default
    per_sample = row["feature_mb_float32"] * 1e6 / row["samples"]
    return (f": a pipeline store at the default config holds {per_sample / 1e6:.1f} MB of float32 features per sample, "
            f"so beyond {limit / per_sample:.0f} samples it exceeds `keep_on_device_max_bytes` and streams")


def _rel(x, base) -> str:
    return "-" if not base else f"{100 * (x / base - 1):+.0f}%"


def _read_ms(trial: dict, bandwidth: float | None) -> float:
    """Milliseconds for the trainer to read one sample (its own reader when measured, else zarr's):
    decoding (measured, warm cache) plus moving the sample's bytes at ``bandwidth``."""
    rate = trial.get("trainer_read_samples_s") or trial["read_samples_s"]
    return 1000 / rate + (1000 * trial["bytes_per_sample"] / bandwidth if bandwidth else 0.0)


def codec_verdict(trials: list[dict], default: str, title: str) -> list[str]:
    """The codec rule applied to ``trials``: least worst-case excess read time over where stores live."""
    from schemas.store_config import StoreConfig

    level = StoreConfig().compression_level  # compressors are compared at the default level
    every = {t["codec"]: t for t in trials if t["flow_dtype"] == "float16"}
    f16 = {c: t for c, t in every.items() if c == "none" or c.endswith(f"-{level}")}
    if not f16:
        return []
    best_at = {path: min(_read_ms(t, bw) for t in f16.values()) for path, bw in READ_PATHS}
    excess = {c: {path: _read_ms(t, bw) - best_at[path] for path, bw in READ_PATHS} for c, t in f16.items()}
    worst = {c: max(e.values()) for c, e in excess.items()}
    chosen = min(worst, key=worst.get)
    reader = ("the trainer's reader (`StoreReader.read`, a batch of rows per array)"
              if all("trainer_read_samples_s" in t for t in f16.values()) else "zarr, one sample at a time")
    lines = [f"The rule, on {title}: a codec costs every reader its bytes and every streamed read its decoding; the "
             f"reader that matters is the trainer, which reads the store every epoch. Stores are read from the page "
             f"cache (a trainer streaming a local store{_streamed_from()}) and from network storage (the design's "
             f"scale-out: shared or object storage). Read time per sample = decoding through {reader} + bytes / "
             "bandwidth; the default should be the compressor whose excess over the best one for each path is "
             f"smallest in the worse of the two (compressors at the default level {level}; the levels are compared "
             "below).", ""]
    header = ["codec", *[f"ms per sample, {path}" for path, _ in READ_PATHS], "worst excess ms"]
    lines += md_table(header, [[f"**{c}**" if c == chosen else c,
                                *[f(_read_ms(f16[c], bw)) for _p, bw in READ_PATHS], f(worst[c])]
                               for c in sorted(f16, key=worst.get)])
    lines.append("")
    if chosen == default:
        lines.append(f"**Verdict:** {chosen} has the smallest worst-case excess ({worst[chosen]:.2f} ms per sample); "
                     f"it is the store's default (`schemas/store_config.py`).")
    else:
        lines.append(f"**Verdict:** by these figures {chosen} (worst-case excess {worst[chosen]:.2f} ms per sample) "
                     f"should be the default, not {default} ({worst.get(default, float('nan')):.2f} ms).")
    runner_up = sorted(f16, key=worst.get)[1] if len(f16) > 1 else None
    if runner_up and worst[runner_up] <= 1.1 * worst[chosen]:
        ru = f16[runner_up]
        lines.append(f"{runner_up} comes within {worst[runner_up] - worst[chosen]:.2f} ms (a tie within the noise of "
                     f"these timings): {_rel(ru['bytes_per_sample'], f16[chosen]['bytes_per_sample'])} bytes, but "
                     f"{_read_ms(ru, None) - _read_ms(f16[chosen], None):+.2f} ms per sample to decode and "
                     f"{_rel(ru['write_mb_s'], f16[chosen]['write_mb_s'])} write speed vs {chosen}; for stores read "
                     f"mostly over slow links, `store: {{compressor: {runner_up.rsplit('-', 1)[0]}}}` is the better "
                     "setting.")
    none_t, chosen_t = f16.get("none"), f16[chosen]
    z3 = f16.get("zstd-3")
    if z3 is not None and chosen != "zstd-3" and runner_up != "zstd-3":
        rate = lambda t: t.get("trainer_read_samples_s") or t["read_samples_s"]  # noqa: E731
        lines.append(f"zstd-3 (plain zstd, the default before blosc-lz4): {_rel(z3['bytes_per_sample'], chosen_t['bytes_per_sample'])} "
                     f"bytes, {_rel(rate(z3), rate(chosen_t))} read speed and {_rel(z3['write_mb_s'], chosen_t['write_mb_s'])} "
                     f"write speed vs {chosen}.")
    if none_t is not None and chosen != "none":
        lines.append(f"No compression decodes fastest ({_read_ms(none_t, None):.2f} vs {_read_ms(chosen_t, None):.2f} "
                     f"ms per sample from the page cache) but stores {_rel(none_t['bytes_per_sample'], chosen_t['bytes_per_sample'])} "
                     f"bytes, which costs {_read_ms(none_t, READ_PATHS[1][1]) - _read_ms(chosen_t, READ_PATHS[1][1]):+.2f} "
                     "ms per sample over a 1 Gb/s link. Set `store: {compressor: none}` for a store that is always "
                     "read from a local disk by a trainer that waits on decoding.")
    zarr_fastest = max((t for c, t in f16.items() if c != "none"), key=lambda t: t["read_samples_s"])
    if zarr_fastest is not chosen_t:
        lines.append(f"Through zarr alone (xarray and Dask queries) {zarr_fastest['codec']} reads fastest among the "
                     f"compressors ({_rel(zarr_fastest['read_samples_s'], chosen_t['read_samples_s'])} vs "
                     f"{chosen}); a store meant mostly for queries can set it in `store.compressor`.")
    write_ms = 1000 * chosen_t["raw_bytes_per_sample"] / 2**20 / chosen_t["write_mb_s"]
    lines.append(f"Writing costs {chosen} {write_ms:.0f} ms per sample (section 1: a real clip takes seconds to "
                 "extract), so write speed does not enter the rule.")
    f32 = next((t for t in trials if t["flow_dtype"] == "float32"), None)
    z3 = f16.get("zstd-3")
    if f32 and z3:
        lines.append(f"float32 flow (zstd-3): {_rel(f32['bytes_per_sample'], z3['bytes_per_sample'])} bytes and "
                     f"{_rel(f32['read_samples_s'], z3['read_samples_s'])} read speed vs float16.")
    for family in ("zstd", "blosc-lz4", "blosc-zstd"):
        levels = {c: t for c, t in every.items() if c.rsplit("-", 1)[0] == family}
        if len(levels) > 1:
            sizes = [t["bytes_per_sample"] for t in levels.values()]
            speeds = [t["read_samples_s"] for t in levels.values()]
            lines.append(f"{family} levels {', '.join(c.rsplit('-', 1)[1] for c in levels)}: sizes within "
                         f"{100 * (max(sizes) / min(sizes) - 1):.1f}%, read speeds within "
                         f"{100 * (max(speeds) / min(speeds) - 1):.0f}% of each other.")
    lines.append("The composite store (28 x 28, K = 1) fits in memory and is read once per run, so its codec does not "
                 "affect training speed.")
    return lines
