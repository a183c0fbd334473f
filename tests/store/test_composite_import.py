"""MEGC 2019 composite: precomputed flow images imported into a store."""
from __future__ import annotations

import csv

import cv2
import numpy as np
import pytest

from schemas.catalog import DatasetEntry
from schemas.pipeline_config import PipelineConfig
from schemas.store_config import CompositeImportConfig
from stag_cli.ingest import ingest_main
from stag_features.extract.align import apply_transform, similarity_transform
from stag_features.ingest.composite import SCHEMATIC_FACE, read_flow_image
from stag_features.ingest.producers import producer_for
from stag_features.ingest.steps import ingest_in_process
from stag_features.store.query import open_store
from stag_features.store.validate import validate_store

from .conftest import write_catalog  # noqa: TID252


def _pts(path) -> np.ndarray:
    body = path.read_text().split("{")[1].split("}")[0].split()
    return np.array(body, dtype=float).reshape(68, 2) - 1.0  # .pts are 1-based


def test_schematic_face_fits_a_frontal_face(shared_data):
    """After a similarity fit to takeo's hand-placed landmarks (a frontal face), the
    template's mean error is under 8% of the inter-ocular distance (measured 6.6%);
    eyes, the anchors of alignment, under 4%."""
    truth = _pts(shared_data / "landmarks" / "takeo.pts")
    fitted = apply_transform(SCHEMATIC_FACE.astype(float), similarity_transform(SCHEMATIC_FACE.astype(float), truth))
    error = np.linalg.norm(fitted - truth, axis=1) / np.linalg.norm(truth[36] - truth[45])
    assert error.mean() < 0.08 and error[36:48].mean() < 0.04


def test_channels_are_read_in_producer_order(tmp_path):
    """An image written with u, v, strain in R, G, B comes back as u, v, strain."""
    rgb = np.zeros((28, 28, 3), np.uint8)
    rgb[..., 0], rgb[..., 1], rgb[..., 2] = 255, 0, 51  # u max, v min, strain 0.2
    path = tmp_path / "a_b .png"
    cv2.imwrite(str(path), rgb[..., ::-1])  # OpenCV writes BGR
    flow, strain = read_flow_image(path, CompositeImportConfig(), "a/b")
    assert np.allclose(flow[0, 0], 0.5) and np.allclose(flow[0, 1], -0.5) and np.allclose(strain, 0.2)


@pytest.mark.slow
def test_composite_store_has_442_samples_of_68_subjects_with_official_labels(shared_data, tmp_path):
    gt = shared_data / "annotations" / "megc2019" / "combined_3class_gt.csv"
    out = tmp_path / "megc2019.zarr"
    entry = DatasetEntry(name="megc2019", adapter="megc2019", root=tmp_path / "no-frames", annotations=gt,
                         store=str(out), options={"flow_dir": str(shared_data / "megc2019_flow")})
    producer = producer_for(entry, PipelineConfig())
    first = ingest_in_process(entry, producer)
    assert (first.count("ok"), first.count("failed"), first.bad_rows) == (442, 0, 0)
    ds = open_store(out)
    assert ds.sizes["sample"] == 442 and len(set(ds["subject"].values)) == 68
    assert ds.sizes["frame"] == 1 and ds.sizes["y"] == ds.sizes["x"] == 28
    classes = ds.attrs["class_schemes"]["megc2019-3"]
    labels = dict(zip(ds["sample"].values, ds["label"].sel(scheme="megc2019-3").values.tolist()))
    with gt.open() as handle:
        rows = [r for r in csv.reader(handle) if r]
    assert len(rows) == 442
    for dataset, subject, clip, label in rows:
        subject = f"{int(subject):03d}" if dataset == "samm" else subject
        assert labels[f"{subject}/{clip}"] == int(label), (subject, clip)
    assert classes == ["negative", "positive", "surprise"]
    # the stored flow is the image's, in normalised units
    one = ds.sel(sample="sub01/EP02_01f")
    image = cv2.imread(str(shared_data / "megc2019_flow" / "sub01_EP02_01f .png"))
    np.testing.assert_allclose(one["flow"].values[0, 0].astype(np.float32), image[..., 2] / 255 - 0.5, atol=1e-3)
    np.testing.assert_allclose(one["strain"].values[0].astype(np.float32), image[..., 0] / 255, atol=1e-3)
    assert validate_store(out).ok
    # a rerun skips everything
    assert ingest_in_process(entry, producer).count("skipped") == 442


def test_stag_ingest_imports_a_flow_image_dataset_through_the_flow(shared_data, tmp_path, prefect_server):
    """A catalog entry with ``flow_dir`` goes through ``stag-ingest``'s flow as an import: six
    CASME II rows of the official sheet, their flow images copied next to the catalog."""
    rows = (shared_data / "annotations" / "megc2019" / "combined_3class_gt.csv").read_text().splitlines()[:6]
    raw = tmp_path / "raw"
    (raw / "flow").mkdir(parents=True)
    (raw / "gt.csv").write_text("\n".join(rows) + "\n")
    for row in rows:
        _, subject, clip, _ = row.split(",")
        name = f"{subject}_{clip} .png"
        (raw / "flow" / name).write_bytes((shared_data / "megc2019_flow" / name).read_bytes())
    store = tmp_path / "megc2019.zarr"
    catalog = write_catalog(tmp_path, {"megc2019": {
        "adapter": "megc2019", "root": str(raw), "annotations": str(raw / "gt.csv"), "store": str(store),
        "default_scheme": "megc2019-3", "options": {"flow_dir": str(raw / "flow")}}})
    assert ingest_main(["--catalog", str(catalog), "--dataset", "megc2019"]) == 0
    ds = open_store(store)
    assert sorted(ds["sample"].values) == sorted(f"{r.split(',')[1]}/{r.split(',')[2]}" for r in rows)
    assert validate_store(store).ok


def test_au_sheets_give_composite_samples_their_coded_aus(shared_data, tmp_path):
    """The composite's file codes no AUs; with the megc2019 adapter's au_sheets each CASME II and SAMM sample
    takes its clip's codes from its dataset's own sheet, stored as au_truth; SMIC's stay unknown (-1)."""
    from stag_features.adapters import load_dataset

    annotations = shared_data / "annotations"
    entry = DatasetEntry(
        name="megc2019", adapter="megc2019", root=tmp_path / "no-frames",
        annotations=annotations / "megc2019" / "combined_3class_gt.csv", store=str(tmp_path / "m.zarr"),
        options={"flow_dir": str(shared_data / "megc2019_flow"),
                 "au_sheets": {"casme2": str(annotations / "casme2" / "CASME2-coding-20140508.xlsx"),
                               "samm": str(annotations / "samm" / "SAMM_Micro_FACS_Codes_v2.xlsx")}})
    records = {r.sample_id: r for r in load_dataset(entry).records}
    coded = {r.dataset for r in records.values() if r.aus.terms}
    assert coded == {"casme2", "samm"} and sum(bool(r.aus.terms) for r in records.values()) == 145 + 133
    assert records["sub01/EP02_01f"].aus.au_numbers() == (12,)  # the CASME II sheet's "12"
    assert records["006/006_1_2"].aus.au_numbers() == (4, 7)  # SAMM's "4+7"
    producer = producer_for(entry, PipelineConfig())
    names = list(PipelineConfig().aus.aus)
    truth = producer.features(records["006/006_1_2"]).au_truth
    assert [names[i] for i in np.flatnonzero(truth == 1)] == [4, 7] and set(truth.tolist()) == {0, 1}
    smic = next(r for r in records.values() if r.dataset == "smic")
    assert (producer.features(smic).au_truth == -1).all()


@pytest.mark.parametrize("sheets, message", [
    ({"casme3": "x.xlsx"}, "must map source datasets"),
    (["casme2"], "must map source datasets"),
    ({"samm": "annotations/casme2/CASME2-coding-20140508.xlsx"}, "holds none of the samm clips"),
])
def test_au_sheets_that_cannot_match_are_refused_by_name(shared_data, tmp_path, sheets, message):
    from stag_features.adapters import AnnotationError, load_dataset

    if isinstance(sheets, dict):
        sheets = {k: str(shared_data / v) for k, v in sheets.items()}
    entry = DatasetEntry(name="megc2019", adapter="megc2019", root=tmp_path,
                         annotations=shared_data / "annotations" / "megc2019" / "combined_3class_gt.csv",
                         store=str(tmp_path / "m.zarr"),
                         options={"flow_dir": str(shared_data / "megc2019_flow"), "au_sheets": sheets})
    with pytest.raises(AnnotationError, match=message):
        load_dataset(entry)
