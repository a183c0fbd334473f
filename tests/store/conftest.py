"""Fixtures for store tests: a small layout and SampleFeatures built from
seeded random arrays that fit it."""
from __future__ import annotations

import numpy as np
import pytest

from schemas.pipeline_config import PipelineConfig
from schemas.sample_features import SampleFeatures
from schemas.sample_record import SampleRecord
from schemas.store_config import StoreConfig
from schemas.store_spec import StoreLayout
from stag_features.store.identity import StoreIdentity

TINY_LAYOUT = StoreLayout(
    frames=3, height=16, width=12, time=20, patch=4,
    roi_names=("brow_left", "brow_right", "mouth"), au_names=("AU1", "AU4", "AU12"),
    edges=((0, 1), (1, 2)), class_schemes={"demo": ("happy", "sad"), "other": ("a", "b", "c")},
)


def random_features(sample: str, seed: int, n_time: int = 9, layout: StoreLayout = TINY_LAYOUT) -> SampleFeatures:
    """SampleFeatures with seeded random content shaped for ``layout``."""
    rng = np.random.default_rng(seed)
    subject, clip = sample.split("/")
    k, h, w, r, a, e, p = (layout.frames, layout.height, layout.width, len(layout.roi_names),
                           len(layout.au_names), len(layout.edges), layout.patch)
    record = SampleRecord(dataset="tiny", subject=subject, clip=clip, onset=1, apex=4, offset=n_time,
                          emotion=["happy", "sad"][seed % 2], labels={"demo": seed % 2})
    f32 = lambda *shape: rng.normal(size=shape).astype("float32")  # noqa: E731
    return SampleFeatures(
        record=record,
        frame_numbers=np.arange(1, n_time + 1, dtype="int32"),
        motion_curve=np.abs(f32(n_time)),
        ranked_frames=rng.permutation(n_time).astype("int32"),
        head_motion=np.abs(f32(n_time)),
        apex_estimated=int(rng.integers(n_time)),
        apex_annotated=3,
        selected_frames=np.sort(rng.choice(n_time, k, replace=False)).astype("int32"),
        flow=f32(k, 2, h, w),
        strain=np.abs(f32(k, h, w)),
        onset_face=rng.integers(0, 256, (h, w), dtype="uint8"),
        landmarks_onset=f32(68, 2),
        landmarks_apex=f32(68, 2),
        roi_boxes=f32(r, 4),
        roi_patches=f32(k, r, 2, p, p),
        roi_stats=f32(k, r, 4),
        au_activations=np.abs(f32(k, a)),
        au_truth=rng.integers(-1, 2, a).astype("int8"),
        edge_weights=np.abs(f32(k, e)),
        timings={"flow": 0.1},
    )


def tiny_identity(config: PipelineConfig | None = None, layout: StoreLayout = TINY_LAYOUT,
                  store_config: StoreConfig | None = None) -> StoreIdentity:
    config = config or PipelineConfig()
    return StoreIdentity(
        dataset="tiny", producer="pipeline", config=config.provenance(),
        config_hash=config.config_hash(), layout=layout, store_config=store_config or config.store,
        flow_units="px",
    )


@pytest.fixture
def make_features():
    return random_features


@pytest.fixture
def make_identity():
    return tiny_identity


# --- ingest fixtures: a tiny synthetic dataset and a real Prefect server -------------------------

import os  # noqa: E402
import shutil  # noqa: E402
from pathlib import Path  # noqa: E402

import yaml  # noqa: E402

PROJECT_ROOT = Path(__file__).resolve().parents[2]
# 2 subjects x 5 emotions x 1 clip = 10 clips: small enough for crash, Dask and schedule tests
TINY_DEMO_OPTIONS = {
    "n_subjects": 2, "clips_per_emotion": 1, "seed": 0,
    "pipeline": {"align": {"crop_size": 96}, "selection": {"k": 3}, "tvl1": {"epsilon": 0.05},
                 "store": {"max_time": 32}},
}
SERVER_START_TIMEOUT_S = 120


def write_catalog(folder: Path, datasets: dict[str, dict]) -> Path:
    """A catalog file in ``folder`` with the given entries; its root is the deepest folder holding
    the catalog and every path of the entries (catalog paths must stay inside the root)."""
    path = folder / "catalog.yaml"
    paths = [str(folder)] + [str(v) for body in datasets.values() for k, v in body.items() if k in ("root", "store")]
    root = os.path.commonpath(paths)
    path.write_text(yaml.safe_dump({"root": root, "datasets": datasets}, sort_keys=False))
    return path


def demo_entry(raw: Path, store: Path, **options) -> dict:
    return {"adapter": "synthetic", "root": str(raw), "store": str(store), "options": {**TINY_DEMO_OPTIONS, **options}}


@pytest.fixture(scope="session")
def tiny_demo_raw(tmp_path_factory) -> Path:
    """The tiny synthetic dataset, generated once per session (frames + sheet)."""
    from schemas.catalog import DatasetEntry
    from stag_features.adapters.synthetic import load_records

    raw = tmp_path_factory.mktemp("demo") / "raw"
    load_records(DatasetEntry(name="demo", adapter="synthetic", root=raw, store=str(raw.parent / "unused.zarr"),
                              options=TINY_DEMO_OPTIONS))
    return raw


@pytest.fixture(scope="session")
def prefect_server(tmp_path_factory):
    """A real Prefect server on 127.0.0.1 for the session; PREFECT_API_URL points at it
    (for this process and every subprocess and Dask worker it starts)."""
    from flows.local_server import local_prefect_server

    log = tmp_path_factory.mktemp("prefect-server") / "server.log"
    with local_prefect_server(log, {**os.environ, "PREFECT_SERVER_ANALYTICS_ENABLED": "false"},
                              SERVER_START_TIMEOUT_S) as url:
        yield from _pointed_at(url)


def _pointed_at(url: str):
    """Point this process (and the subprocesses it starts) at the server at ``url`` while in use."""
    from prefect.settings import PREFECT_API_URL, temporary_settings

    previous = os.environ.get("PREFECT_API_URL")
    os.environ["PREFECT_API_URL"] = url
    try:
        with temporary_settings({PREFECT_API_URL: url}):
            yield url
            from prefect.logging.handlers import APILogWorker

            APILogWorker.drain_all(timeout=30)  # send pending run logs now, not to a stopped server at exit
    finally:
        if previous is None:
            os.environ.pop("PREFECT_API_URL", None)
        else:
            os.environ["PREFECT_API_URL"] = previous


@pytest.fixture(scope="session")
def threaded_demo_store(tmp_path_factory, tiny_demo_raw, prefect_server) -> tuple[Path, Path]:
    """(catalog, store) of the tiny demo ingested once by the default (threaded) flow."""
    from flows.ingest import ingest_dataset

    folder = tmp_path_factory.mktemp("threaded")
    catalog = write_catalog(folder, {"demo": demo_entry(tiny_demo_raw, folder / "demo.zarr")})
    counts = ingest_dataset(catalog=str(catalog), dataset="demo")
    assert counts == {"ok": 10, "skipped": 0, "failed": 0, "bad_rows": 0}, counts
    return catalog, folder / "demo.zarr"


def stores_equal(a: Path, b: Path, ignore: tuple[str, ...] = ()) -> list[str]:
    """Names of the arrays whose committed samples differ between two stores (empty if equal)."""
    from schemas.store_spec import SAMPLE_ARRAYS
    from stag_features.store.query import open_store

    ds_a, ds_b = open_store(a), open_store(b)
    ids_a, ids_b = sorted(ds_a["sample"].values), sorted(ds_b["sample"].values)
    if ids_a != ids_b:
        return [f"samples differ: {sorted(set(ids_a) ^ set(ids_b))}"]
    ds_b = ds_b.sel(sample=ds_a["sample"].values)
    skip = {"sample_id", "failure_time", *ignore}
    diffs = []
    for spec in SAMPLE_ARRAYS:
        if spec.name in skip or spec.name not in ds_a.variables:
            continue  # failure fields are not part of the committed view
        va, vb = np.asarray(ds_a[spec.name].values), np.asarray(ds_b[spec.name].values)
        if va.dtype.kind == "f":
            same = np.array_equal(va, vb, equal_nan=True)
        elif va.dtype.kind in "TUO":
            same = va.tolist() == vb.tolist()
        else:
            same = np.array_equal(va, vb)
        if not same:
            diffs.append(spec.name)
    return diffs


def copy_store(source: Path, target: Path) -> Path:
    shutil.copytree(source, target)
    return target
