"""The two-phase MEGC 2019 composite (issue 24): phase images, real landmarks, source datasets."""
from __future__ import annotations

import itertools
import shutil

import cv2
import numpy as np
import pytest

from schemas.catalog import DatasetEntry
from schemas.pipeline_config import PipelineConfig
from schemas.store_config import CompositePhasesConfig
from schemas.store_spec import APEX_FACE, SOURCE_DATASET
from stag_features.adapters import load_dataset
from stag_features.extract.flow import optical_strain
from stag_features.extract.rois import grown_boxes
from stag_features.ingest.composite import read_flow_image, template_landmarks
from stag_features.ingest.composite_phases import PhaseImageProducer, phase_frame, warp_to_phase_frame
from stag_features.ingest.producers import producer_for
from stag_features.ingest.steps import ingest_in_process
from stag_features.store.query import open_store
from stag_features.store.validate import validate_store

SHEET = "annotations/megc2019/combined_3class_gt.csv"
# one sample of each source dataset, and SAMM's / SMIC's naming quirks (padded subject, s1 in face names)
CHOSEN = ("casme2,sub01,EP02_01f", "samm,6,006_1_2", "smic,s01,s01_ne_01", "casme2,sub20,EP01_03")


def _subset(shared_data, tmp_path, rows: tuple[str, ...] = CHOSEN, drop_face: str | None = None) -> DatasetEntry:
    """A catalog entry over a copy of the composite's files for ``rows`` only (``drop_face``: a face left out)."""
    lines = [line for line in (shared_data / SHEET).read_text().splitlines() if line.rsplit(",", 1)[0] in rows]
    assert len(lines) == len(rows), lines
    sheet = tmp_path / "sheet.csv"
    sheet.write_text("\n".join(lines) + "\n")
    folders = {name: tmp_path / name for name in ("flow", "phases", "faces")}
    for folder in folders.values():
        folder.mkdir()
    for line in lines:
        dataset, subject, clip, _label = line.split(",")
        stem = f"{int(subject):03d}_{clip}" if dataset == "samm" else f"{subject}_{clip}"
        shutil.copy(shared_data / "megc2019_flow" / f"{stem} .png", folders["flow"])
        for suffix in ("", "_1"):
            shutil.copy(shared_data / "megc2019_flow_phases" / f"{stem}{suffix} .png", folders["phases"])
        face = next(p for p in (shared_data / "megc2019_apex_faces").glob("*.jpg")
                    if p.stem in (stem, stem[:4] + stem[4:].replace("s0", "s", 1)))
        if face.stem != drop_face:
            shutil.copy(face, folders["faces"])
    return DatasetEntry(name="phases", adapter="megc2019", root=folders["flow"], annotations=sheet,
                        store=str(tmp_path / "phases.zarr"), default_scheme="megc2019-3",
                        options={"flow_dir": str(folders["flow"]), "phases_dir": str(folders["phases"]),
                                 "apex_face_dir": str(folders["faces"])})


def test_phase_frame_moves_points_as_the_warp_moves_pixels():
    """A dot warped into the phase frame lands where ``phase_frame`` maps its coordinates."""
    phases = CompositePhasesConfig()
    image = np.zeros((28, 28), np.float32)
    image[8, 20] = 1.0
    warped = warp_to_phase_frame(image[None], phases)[0]
    (x, y), = phase_frame(np.array([[20.0, 8.0]]), phases)
    ys, xs = np.mgrid[:28, :28]
    centroid = (float((warped * xs).sum() / warped.sum()), float((warped * ys).sum() / warped.sum()))
    assert abs(centroid[0] - x) < 0.05 and abs(centroid[1] - y) < 0.05


def test_per_image_minmax_spans_each_channel_like_the_flow_images():
    from stag_features.ingest.composite_phases import per_image_minmax

    rng = np.random.default_rng(0)
    flow, strain = rng.normal(0, 0.05, (1, 2, 28, 28)).astype(np.float32), rng.random((1, 28, 28)).astype(np.float32)
    scaled_flow, scaled_strain = per_image_minmax(flow, strain * 0.3, 0.5)
    for channel in (scaled_flow[0, 0], scaled_flow[0, 1]):
        assert np.isclose(channel.min(), -0.5) and np.isclose(channel.max(), 0.5)
    assert np.isclose(scaled_strain.min(), 0) and np.isclose(scaled_strain.max(), 1)
    assert np.allclose(np.corrcoef(scaled_flow[0, 0].ravel(), flow[0, 0].ravel())[0, 1], 1.0)


def test_grown_boxes_reach_the_minimum_side_inside_the_image():
    boxes = np.array([[10, 10, 12, 11], [0, 0, 2, 2], [26, 20, 28, 28], [2, 2, 20, 20]], np.float32)
    grown = grown_boxes(boxes, 7.0, 28)
    sides = grown[:, 2:] - grown[:, :2]
    assert np.all(sides >= 7.0 - 1e-5) and np.all(grown >= 0) and np.all(grown <= 28)
    assert np.allclose(grown[0], [7.5, 7.0, 14.5, 14.0])  # grown about its centre (11, 10.5)
    assert np.allclose(grown[3], boxes[3])  # a box already big enough is kept


def test_phase_image_channels_are_u_v_strain_in_r_g_b(shared_data):
    """The layout read for the phase images (OpenCV B = strain, G = v, R = u, as in the flow images) is
    the one whose strain channel best follows the strain of its flow channels' spatial derivatives,
    among all six assignments of the three channels, over 60 phase images of each phase."""
    files = sorted((shared_data / "megc2019_flow_phases").glob("*.png"))
    chosen = [p for p in files if not p.stem.rstrip().endswith(("_2", "_3"))][:120]
    scores = {perm: [] for perm in itertools.permutations(range(3))}
    for path in chosen:
        bgr = cv2.imread(str(path)).astype(np.float32)
        for perm in scores:
            u, v, s = (bgr[..., c] for c in perm)
            derived = optical_strain(np.stack([u, v]))
            scores[perm].append(np.corrcoef(derived.ravel(), s.ravel())[0, 1])
    means = {perm: float(np.nanmean(values)) for perm, values in scores.items()}
    assert max(means, key=means.get) == (2, 1, 0), means  # u = R, v = G, strain = B


@pytest.mark.slow
def test_producer_on_real_samples_gives_landmarks_rois_phases_and_sources(shared_data, tmp_path):
    entry = _subset(shared_data, tmp_path)
    summary = ingest_in_process(entry, producer_for(entry, PipelineConfig()))
    assert not summary.failures(), summary.table()
    ds = open_store(entry.store).load()
    assert ds.attrs["producer"] == PhaseImageProducer.kind and "normalised" in ds.attrs["flow_units"]
    assert validate_store(entry.store).ok
    records = {r.sample_id: r for r in load_dataset(entry).records}
    for sid in ds["sample"].values:
        one = ds.sel(sample=sid)
        assert str(one[SOURCE_DATASET].values) == records[sid].dataset
        landmarks = one["landmarks_apex"].values
        assert np.isfinite(landmarks).all() and 0 < landmarks[:, 0].min() and landmarks[:, 0].max() < 28
        eyes_y, mouth_y = landmarks[36:48, 1].mean(), landmarks[48:68, 1].mean()
        assert eyes_y < landmarks[30, 1] < mouth_y  # eyes above the nose tip above the mouth: a real face
        boxes = one["roi_boxes"].values
        assert np.all(boxes >= 0) and np.all(boxes <= 28) and np.all(boxes[:, 2:] - boxes[:, :2] >= 7 - 1e-4)
        assert one[APEX_FACE].shape == (112, 112) and one[APEX_FACE].values.std() > 10
        # phases in order: frame 0 is the onset -> apex image, frame 1 the apex -> offset one
        producer = producer_for(entry, PipelineConfig())
        base = producer.base_name(records[sid])
        for k, suffix in enumerate(("", "_1")):
            flow, _ = read_flow_image(producer.phases_dir / f"{base}{suffix} .png", producer.phases.image, sid)
            assert np.allclose(one["flow"].values[k], flow[0], atol=1e-3)
        assert one["selected_frames"].values.tolist() == [1, 2]


@pytest.mark.slow
def test_a_missing_apex_face_is_a_failure_naming_the_file_and_the_run_completes(shared_data, tmp_path):
    entry = _subset(shared_data, tmp_path, CHOSEN[:3], drop_face="006_006_1_2")
    summary = ingest_in_process(entry, producer_for(entry, PipelineConfig()))
    failed = summary.failures()
    assert [o.sample_id for o in failed] == ["006/006_1_2"], summary.table()
    assert "006_006_1_2.jpg" in failed[0].reason and "no apex face" in failed[0].reason
    assert open_store(entry.store).sizes["sample"] == 2


@pytest.mark.slow
def test_the_whole_two_phase_store_has_442_real_faces_and_the_official_labels(shared_data, tmp_path):
    """The catalog's megc2019_phases entry, built whole: 442 samples of 68 subjects, the labels of
    combined_3class_gt.csv, every sample with landmarks found on its own face, a valid store."""
    from schemas.catalog import load_catalog

    from .conftest import PROJECT_ROOT  # noqa: TID252

    entry = load_catalog(PROJECT_ROOT / "data_catalog.yaml").get("megc2019_phases")
    entry = entry.model_copy(update={"store": str(tmp_path / "phases.zarr")})
    summary = ingest_in_process(entry, producer_for(entry, PipelineConfig()))
    assert (summary.count("ok"), summary.count("failed"), summary.bad_rows) == (442, 0, 0), summary.table()
    ds = open_store(entry.store)
    assert ds.sizes["sample"] == 442 and len(set(ds["subject"].values)) == 68 and ds.sizes["frame"] == 2
    labels = dict(zip(ds["sample"].values, ds["label"].sel(scheme="megc2019-3").values.tolist()))
    sources = dict(zip(ds["sample"].values, ds[SOURCE_DATASET].values.tolist()))
    rows = [line.split(",") for line in (shared_data / SHEET).read_text().splitlines() if line]
    assert len(rows) == 442
    for dataset, subject, clip, label in rows:
        sid = f"{int(subject):03d}/{clip}" if dataset == "samm" else f"{subject}/{clip}"
        assert labels[sid] == int(label) and str(sources[sid]) == dataset, sid
    landmarks = ds["landmarks_apex"].values
    template = phase_frame(template_landmarks(28), CompositePhasesConfig())
    assert np.isfinite(landmarks).all()
    assert np.abs(landmarks - template).max(axis=(1, 2)).min() > 0.05  # every sample has its own face's landmarks
    assert validate_store(entry.store).ok
