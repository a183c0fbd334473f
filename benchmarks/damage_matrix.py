"""Every kind of chunk damage on every digested per-sample array (issue 22, "Damage").

A 5-clip demo store is ingested once (in process, the real pipeline) as the
reference. Then, for each damage kind and each array of ``DIGESTED_ARRAYS``,
a copy of it has one chunk of one committed sample (the samples taken in turn)

  delete    removed
  truncate  cut to half its bytes
  zero      overwritten by as many zero bytes (same size: only the digest tells)

and the script records

  found     ``validate_store`` (plain, then ``--deep``) reports the store damaged
            and names the sample and the array (a damaged ``sample_id`` chunk is
            named by its slot)
  refused   the reader (``StoreReader.read`` for feature arrays, ``column`` for
            the others) raises DamagedSampleError naming that sample, and so
            does ``open_store`` (when opening, or when the array is computed)
  repaired  the next ingest plans exactly that sample, and after it the store
            validates (deep) and equals the reference bit for bit

A case "survived" when all three hold. The table goes to
benchmarks/results/damage_matrix.json and docs/reliability.md.

    python benchmarks/damage_matrix.py
"""
from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import zarr  # noqa: E402

from benchmarks._common import LoadSampler, write_results  # noqa: E402
from benchmarks._inputs import DEMO_DEFAULTS, write_bench_catalog  # noqa: E402
from benchmarks._stores import store_differences  # noqa: E402

DAMAGES = ("delete", "truncate", "zero")


def damage_chunk(store: Path, name: str, slot: int, how: str) -> None:
    from stag_features.store.integrity import chunk_file

    file = chunk_file(store, zarr.open_group(str(store), mode="r")[name], slot)
    if how == "delete":
        file.unlink()
    elif how == "truncate":
        file.write_bytes(file.read_bytes()[: max(1, file.stat().st_size // 2)])
    else:
        file.write_bytes(bytes(file.stat().st_size))


def found_by(store: Path, sample: str, slot: int, name: str, deep: bool) -> bool:
    from stag_features.store.validate import validate_store

    report = validate_store(store, deep=deep)
    named = f"(slot {slot})" if name == "sample_id" else repr(sample)  # a lost id: the slot says which
    return not report.ok and any(named in p and f": {name}: " in p for p in report.problems)


def refused(store: Path, sample: str, slot: int, name: str) -> str:
    """'yes' when the reader and open_store both refuse; otherwise what happened instead."""
    from schemas.store_spec import FEATURE_ARRAYS
    from stag_features.store import DamagedSampleError, StoreReader
    from stag_features.store.query import open_store

    reader = StoreReader(store)
    try:
        reader.read(name, [slot]) if name in FEATURE_ARRAYS else reader.column(name, [slot])
        return "reader served it"
    except DamagedSampleError as exc:
        if name != "sample_id" and repr(sample) not in str(exc):
            return f"reader refused without naming it: {exc}"
    except Exception as exc:  # noqa: BLE001 - what a user would see instead of a message
        return f"reader crashed: {type(exc).__name__}: {exc}"[:200]
    try:  # opening refuses a store whose chunk sizes or coordinates are damaged; computing, the rest
        ds = open_store(store)
        if name in ds.data_vars:
            ds[name].sel(sample=sample).values
        return "open_store served it"
    except DamagedSampleError as exc:
        return "yes" if name == "sample_id" or repr(sample) in str(exc) or sample in str(exc) else f"unnamed: {exc}"
    except Exception as exc:  # noqa: BLE001
        return f"open_store crashed: {type(exc).__name__}: {exc}"[:200]


def repaired(store: Path, reference: Path, catalog: Path, sample: str, name: str) -> str:
    from stag_features.ingest.steps import ingest_in_process, prepare_ingest, resolve_producer
    from stag_features.store.validate import validate_store

    entry, producer = resolve_producer(catalog, "demo")
    planned = sorted(item.sample_id for item in prepare_ingest(entry, producer).work)
    if planned != [sample]:
        return f"planned {planned}"
    summary = ingest_in_process(entry, producer)
    if summary.count("ok") != 1 or summary.failures():
        return f"rerun: {summary.table()}"
    if not validate_store(store, deep=True).ok:
        return "store invalid after the rerun"
    differ = store_differences(store, reference)
    return "yes" if not differ else f"differs after the rerun: {differ}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--name", default="damage_matrix")
    args = parser.parse_args(argv)

    from schemas.store_spec import DIGESTED_ARRAYS
    from stag_features.ingest.steps import ingest_in_process, resolve_producer
    from stag_features.store.writer import slot_states

    folder = Path(tempfile.mkdtemp(prefix="stag-damage-"))
    demo = {**DEMO_DEFAULTS, "n_subjects": 1, "clips_per_emotion": 1}
    with LoadSampler() as load:
        reference_catalog = write_bench_catalog(folder / "reference", demo=demo)
        ingest_in_process(*resolve_producer(reference_catalog, "demo"))
        reference = folder / "reference" / "demo.zarr"
        samples = sorted((sid, state.slot) for sid, state in slot_states(reference).items())
        cases = []
        for how in DAMAGES:
            for i, name in enumerate(DIGESTED_ARRAYS):
                sample, slot = samples[i % len(samples)]
                case = folder / f"{how}-{name}"
                catalog = write_bench_catalog(case, demo=demo)
                shutil.copytree(reference, case / "demo.zarr")
                damage_chunk(case / "demo.zarr", name, slot, how)
                row = {"damage": how, "array": name, "sample": sample,
                       "found_plain": found_by(case / "demo.zarr", sample, slot, name, deep=False),
                       "found_deep": found_by(case / "demo.zarr", sample, slot, name, deep=True),
                       "refused": refused(case / "demo.zarr", sample, slot, name),
                       "repaired": repaired(case / "demo.zarr", reference, catalog, sample, name)}
                row["survived"] = row["found_deep"] and row["refused"] == "yes" and row["repaired"] == "yes"
                cases.append(row)
                print(f"{how:8s} {name:18s} found {row['found_plain']!s:5s}/{row['found_deep']!s:5s} "
                      f"refused {row['refused'][:60]:60s} repaired {row['repaired'][:60]}", flush=True)
                if row["survived"]:
                    shutil.rmtree(case)
    summary = {how: {"tried": sum(c["damage"] == how for c in cases),
                     "found_plain": sum(c["found_plain"] for c in cases if c["damage"] == how),
                     "survived": sum(c["survived"] for c in cases if c["damage"] == how)} for how in DAMAGES}
    survived = sum(c["survived"] for c in cases)
    print(f"{survived}/{len(cases)} damage cases found, refused and repaired")
    write_results(args.name, {"samples": len(samples), "summary": summary, "cases": cases}, load,
                  notes=[f"scratch folder {folder} (kept: the cases that were not survived)"])
    return 0 if survived == len(cases) else 1


if __name__ == "__main__":
    sys.exit(main())
