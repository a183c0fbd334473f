"""Every figure for people, rendered on a demo sample and on a MEGC 2019 composite sample: the
sample figure (``stag inspect sample``), the face figure (``stag inspect face``, on a demo clip:
the composite has flow images, no frames), and a run's attention and curves figures."""
from __future__ import annotations

import cv2
import numpy as np
import pytest
import xarray as xr

from schemas.catalog import DatasetEntry
from schemas.model_config import DataConfig
from schemas.pipeline_config import PipelineConfig
from stag_features.figures import sample_figure
from stag_features.figures.drawing import au_groups, stored_face
from stag_features.ingest.producers import producer_for
from stag_features.ingest.steps import ingest_in_process
from stag_features.store.query import open_store
from stag_model.data import open_samples
from stag_model.run_figures import attention_png, canonical_face, curves_png
from stag_model.train import FoldResult

COMPOSITE_ROWS = 6  # sheet rows of the small composite store


@pytest.fixture(scope="module")
def composite_store(shared_data, tmp_path_factory):
    """A composite store of the first rows of the MEGC 2019 sheet, from ../shared/data's flow images."""
    folder = tmp_path_factory.mktemp("composite")
    rows = (shared_data / "annotations" / "megc2019" / "combined_3class_gt.csv").read_text().splitlines()
    sheet = folder / "gt.csv"
    sheet.write_text("\n".join(rows[:COMPOSITE_ROWS]) + "\n")
    store = folder / "megc2019.zarr"
    entry = DatasetEntry(name="megc2019", adapter="megc2019", root=folder / "no-frames", annotations=sheet,
                         store=str(store), options={"flow_dir": str(shared_data / "megc2019_flow")})
    summary = ingest_in_process(entry, producer_for(entry, PipelineConfig()))
    assert summary.count("ok") == COMPOSITE_ROWS, summary.table()
    return store


def _image(path) -> np.ndarray:
    image = cv2.imread(str(path))
    assert image is not None and image.std() > 10, path  # written, not blank
    return image


def test_sample_figure_of_a_demo_sample(threaded_demo_store, tmp_path):
    _catalog, store = threaded_demo_store
    sample = str(open_store(store)["sample"].values[0])
    image = _image(sample_figure.render_sample(store, sample, tmp_path / "demo.png"))
    assert image.shape[1] > 2 * image.shape[0]  # three panels side by side


def test_sample_figure_of_a_composite_sample(composite_store, tmp_path):
    ds = open_store(composite_store)
    sample = str(ds["sample"].values[0])
    image = _image(sample_figure.render_sample(composite_store, sample, tmp_path / "composite.png"))
    assert image.shape[1] > 2 * image.shape[0]


def test_composite_face_panel_uses_the_apex_face_when_the_store_has_one(composite_store, tmp_path, monkeypatch):
    ds = open_store(composite_store)
    one = ds.isel(sample=0).load()
    assert stored_face(one.drop_vars("apex_face", errors="ignore"))[0] is None  # the onset face is empty: fallback
    size = 64
    face = np.tile(np.linspace(30, 220, size, dtype=np.float32).astype(np.uint8), (size, 1))  # a gradient "face"
    with_face = ds.assign(apex_face=xr.DataArray(np.repeat(face[None], ds.sizes["sample"], 0),
                                                 dims=("sample", "face_y", "face_x")))
    found, kind = stored_face(with_face.isel(sample=0))
    assert kind == "apex face" and found.shape == (size, size)
    monkeypatch.setattr(sample_figure, "open_store", lambda _path: with_face)
    plain = _image(sample_figure.render_sample(composite_store, str(ds["sample"].values[0]), tmp_path / "a.png"))
    drawn = _image(sample_figure.render_sample(composite_store, str(ds["sample"].values[0]), tmp_path / "b.png"))
    assert plain.shape == drawn.shape  # same layout; the gradient makes the face panel vary left to right
    panel = drawn[drawn.shape[0] // 3: drawn.shape[0] // 2, : drawn.shape[1] // 5].astype(np.float32).mean(axis=(0, 2))
    assert np.ptp(panel) > 60


def test_aus_the_cue_cannot_tell_apart_share_one_bar(threaded_demo_store):
    _catalog, store = threaded_demo_store
    ds = open_store(store)
    names = [str(n) for n in ds["au"].values]
    groups = au_groups(names, ds.attrs.get("pipeline_config"))
    merged = [[names[i] for i in g] for g in groups if len(g) > 1]
    assert ["AU5", "AU7"] in merged and sum(len(g) for g in groups) == len(names)


def _fold_results(samples, epochs: int = 3) -> dict:
    rng = np.random.default_rng(0)
    r, e = len(samples.graph.roi_names), len(samples.graph.edge_index)
    fold = FoldResult("f1", 1, np.arange(2), np.full((2, len(samples.class_names)), 0.5), {}, {},
                      train_loss=list(np.linspace(1.0, 0.5, epochs)), train_accuracy=list(np.linspace(0.3, 0.8, epochs)),
                      attention={"rois": rng.random(r).tolist(), "edges": rng.random(e).tolist()})
    return {1: [fold]}


@pytest.mark.parametrize("which", ["demo", "composite"])
def test_attention_and_curves_of_a_run(which, threaded_demo_store, composite_store, tmp_path):
    store, scheme = (threaded_demo_store[1], "demo") if which == "demo" else (composite_store, "megc2019-3")
    samples = open_samples([store], DataConfig(scheme=scheme))
    face, centres, (h, w), kind = canonical_face(samples)
    assert (face is not None) == (which == "demo" or kind == "mean apex face")  # composite: apex face or none
    assert centres.shape == (len(samples.graph.roi_names), 2) and (centres >= 0).all() and (centres[:, 0] <= w).all()
    results = _fold_results(samples)
    assert attention_png(samples, results, f"stag loso on {store.name}", tmp_path / "attention.png")
    assert curves_png(results, f"stag loso on {store.name}", tmp_path / "curves.png")
    _image(tmp_path / "attention.png")
    _image(tmp_path / "curves.png")


def test_face_figure_of_a_demo_clip(tiny_demo_raw, tmp_path):
    from stag_features.figures.face_figure import inspect_face

    clip = next(p for p in sorted(tiny_demo_raw.glob("s01/*")) if p.is_dir())
    summary = inspect_face(clip, tmp_path / "face.png", PipelineConfig(), n_frames=6)
    assert summary["frames"] == 6 and summary["rois"] == 15
    image = _image(tmp_path / "face.png")
    assert image.shape[1] > image.shape[0]  # the face and the head-motion plot
