"""`stag export flow-images --format megc2019`: files that the MEGC 2019 community's code reads.

A composite store exports back to the very images it was imported from; a pipeline store (flow in
pixels, K frames, another size) exports 28 x 28 images in the same channel order and range, equal to
the image stag's STSTNet is given."""
from __future__ import annotations

import csv
import dataclasses
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from schemas.catalog import DatasetEntry
from schemas.megc2019_image import INDEX_COLUMNS, INDEX_FILE
from schemas.model_config import DataConfig
from schemas.pipeline_config import PipelineConfig
from schemas.store_config import CompositeImportConfig
from stag_cli.main import main
from stag_features.export.flow_images import area_resize
from stag_features.ingest.composite import read_flow_image
from stag_features.ingest.producers import producer_for
from stag_features.ingest.steps import ingest_in_process
from stag_features.store import StoreReader
from stag_features.store.slots import write_sample
from stag_features.store.writer import allocate_slots, ensure_store
from stag_model.baselines import Ststnet, megc2019_image
from stag_model.data import make_source, open_samples

SUBJECTS = ("006", "s03", "sub02")  # one subject of each source dataset


@pytest.fixture(scope="module")
def composite_store(shared_data, tmp_path_factory) -> Path:
    """A composite store of the official rows of SUBJECTS, built by the in-process ingest."""
    folder = tmp_path_factory.mktemp("composite")
    gt = shared_data / "annotations" / "megc2019" / "combined_3class_gt.csv"
    rows = [line for line in gt.read_text().splitlines()
            if (f"{int(line.split(',')[1]):03d}" if line.startswith("samm") else line.split(",")[1]) in SUBJECTS]
    (folder / "gt.csv").write_text("\n".join(rows) + "\n")
    entry = DatasetEntry(name="megc2019", adapter="megc2019", root=folder / "no-frames", annotations=folder / "gt.csv",
                         store=str(folder / "megc2019.zarr"),
                         options={"flow_dir": str(shared_data / "megc2019_flow")})
    assert ingest_in_process(entry, producer_for(entry, PipelineConfig())).count("ok") == len(rows)
    return folder / "megc2019.zarr"


def _ramps(features, amplitude: float):
    """u grows along x, v falls along y, strain peaks at one pixel; every frame k scaled by amplitude[k]."""
    k, _, h, w = features.flow.shape
    y, x = np.mgrid[:h, :w].astype(np.float32)
    scale = np.asarray(amplitude, np.float32)[:, None, None]
    flow = np.stack([x[None] * scale, (h - y)[None] * scale], 1)  # (K, 2, H, W)
    strain = np.exp(-((x - 3) ** 2 + (y - 10) ** 2) / 4)[None] * scale  # (K, H, W), peak at x 3, y 10
    return dataclasses.replace(features, flow=flow.astype(np.float32), strain=strain.astype(np.float32))


@pytest.fixture
def pipeline_store(tmp_path, make_features, make_identity) -> Path:
    """A tiny pipeline store (flow in px, K = 3, 16 x 12): frame 1 moves most."""
    path = tmp_path / "tiny.zarr"
    ensure_store(path, make_identity())
    samples = [_ramps(make_features(f"p{i}/c{i}", i), (1.0, 3.0 + i, 2.0)) for i in range(4)]
    slots = allocate_slots(path, [f.record.subject + "/" + f.record.clip for f in samples])
    for f in samples:
        write_sample(path, slots[f"{f.record.subject}/{f.record.clip}"], f, input_hash=f.record.clip)
    return path


def _export(store: Path, out: Path, *extra: str) -> int:
    return main(["export", "flow-images", str(store), str(out), "--format", "megc2019", *extra])


def test_composite_store_exports_the_images_it_was_imported_from(composite_store, shared_data, tmp_path):
    out = tmp_path / "images"
    assert _export(composite_store, out) == 0
    with (out / INDEX_FILE).open() as handle:
        index = list(csv.DictReader(handle))
    names = sorted(p.name for p in out.glob("*.png"))
    assert names == sorted(f"{row['sub']}_{row['filename_o']} .png" for row in index)  # HTNet's name rule
    assert list(index[0])[:len(INDEX_COLUMNS)] == list(INDEX_COLUMNS)
    originals = shared_data / "megc2019_flow"
    reader = StoreReader(composite_store)
    slots = reader.committed()
    ids = dict(zip(reader.column("sample_id", slots).tolist(), slots.tolist()))
    flows, strains = reader.read("flow", slots), reader.read("strain", slots)
    for row in index:
        name = f"{row['sub']}_{row['filename_o']} .png"
        exported = cv2.imread(str(out / name))
        assert exported.shape == (28, 28, 3) and exported.dtype == np.uint8
        np.testing.assert_array_equal(exported, cv2.imread(str(originals / name)))  # the very same pixels
        # re-imported, the image gives the store's arrays back to 8-bit resolution
        flow, strain = read_flow_image(out / name, CompositeImportConfig(), name)
        position = slots.tolist().index(ids[f"{row['sub']}/{row['filename_o']}"])
        assert np.abs(flow - flows[position]).max() <= 0.5 / 255 and np.abs(strain - strains[position]).max() <= 0.5 / 255
    labels = dict(zip(reader.column("sample_id", slots).tolist(), reader.labelled("megc2019-3")[1].tolist()))
    assert all(int(row["label"]) == labels[f"{row['sub']}/{row['filename_o']}"] for row in index)


def test_pipeline_store_exports_megc_images_in_channel_order(pipeline_store, tmp_path):
    out = tmp_path / "images"
    assert _export(pipeline_store, out, "--scheme", "demo") == 0
    images = {p.name: cv2.imread(str(p)) for p in out.glob("*.png")}
    assert sorted(images) == [f"p{i}_c{i} .png" for i in range(4)]
    for image in images.values():
        assert image.shape == (28, 28, 3) and image.dtype == np.uint8
        assert (image.reshape(-1, 3).min(0) == 0).all() and (image.reshape(-1, 3).max(0) == 255).all()
        strain, v, u = image[..., 0].astype(int), image[..., 1].astype(int), image[..., 2].astype(int)
        assert (np.diff(u, axis=1) >= 0).all() and (u == u[:1]).all()  # R = u: grows along x only
        assert (np.diff(v, axis=0) <= 0).all() and (v == v[:, :1]).all()  # G = v: falls along y only
        peak = np.unravel_index(strain.argmax(), strain.shape)  # B = strain: peak near (x 3, y 10) of 12 x 16
        assert abs(peak[1] - 3.5 * 28 / 12) <= 2.5 and abs(peak[0] - 10.5 * 28 / 16) <= 2.5
        # a MEGC reader (stag's own importer) takes R, G, B back as u, v, strain
        flow, strain_read = read_flow_image(next(iter(out.glob("*.png"))), CompositeImportConfig(), "x")
        assert flow.shape == (1, 2, 28, 28) and strain_read.shape == (1, 28, 28)
    with (out / INDEX_FILE).open() as handle:
        assert [row["sub"] for row in csv.DictReader(handle)] == [f"p{i}" for i in range(4)]


def test_exported_image_is_what_ststnet_is_given(pipeline_store, tmp_path):
    """The exporter (numpy) and STSTNet's input (torch) make the same image of the apex frame."""
    out = tmp_path / "images"
    assert _export(pipeline_store, out, "--scheme", "demo") == 0
    data = DataConfig(scheme="demo", normalise=False, flip_probability=0.0)  # the tiny graph has no mirror
    samples = open_samples([pipeline_store], data)
    positions, batch = next(iter(make_source(samples, data, torch.device("cpu")).batches(np.arange(len(samples)), 8)))
    model_input = megc2019_image(Ststnet.apex_volume(batch, 28)).numpy()  # (B, 3, 28, 28): strain, v, u
    for position, image in zip(positions.tolist(), model_input):
        exported = cv2.imread(str(out / f"{samples.sample_ids[position].replace('/', '_')} .png"))
        np.testing.assert_array_equal(exported.transpose(2, 0, 1), image.astype(np.uint8))


def test_area_resize_averages_each_cell_like_torch():
    field = np.random.default_rng(0).normal(size=(16, 12)).astype(np.float32)
    expected = torch.nn.functional.interpolate(torch.from_numpy(field)[None, None], size=(28, 28), mode="area")
    np.testing.assert_allclose(area_resize(field, 28), expected[0, 0].numpy(), atol=1e-6)
    np.testing.assert_allclose(area_resize(np.ones((56, 56), np.float32), 28), 1.0)


def test_refusals_are_one_line(pipeline_store, tmp_path, capsys):
    assert _export(pipeline_store, tmp_path / "a") == 2  # two schemes and none chosen
    error = capsys.readouterr().err.strip()
    assert len(error.splitlines()) == 1 and "--scheme" in error and "'demo', 'other'" in error
    assert _export(pipeline_store, tmp_path / "a", "--scheme", "nope") == 2
    assert "no class scheme 'nope'" in capsys.readouterr().err
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "keep.txt").write_text("x")
    assert _export(pipeline_store, tmp_path / "full", "--scheme", "demo") == 2
    assert "--overwrite" in capsys.readouterr().err
    assert _export(tmp_path / "no-store.zarr", tmp_path / "b", "--scheme", "demo") == 2
    assert "no-store.zarr" in capsys.readouterr().err


def test_a_store_of_several_sources_names_each_samples_dataset_in_the_index(tmp_path, make_features, make_identity):
    """The index CSV's dataset column is each sample's source_dataset where the store records one."""
    from schemas.store_spec import SOURCE_DATASET, StoreLayout

    identity = make_identity()
    layout = StoreLayout(**{**identity.layout.model_dump(), "extra_arrays": (SOURCE_DATASET,)})
    path = tmp_path / "mixed.zarr"
    ensure_store(path, dataclasses.replace(identity, layout=layout))
    sources = {"p0/c0": "casme2", "p1/c1": "samm", "p2/c2": "smic"}
    slots = allocate_slots(path, list(sources))
    for i, (sid, source) in enumerate(sources.items()):
        features = make_features(sid, i)
        features.extras[SOURCE_DATASET] = np.array(source, dtype=str)
        write_sample(path, slots[sid], features, input_hash=sid)
    assert _export(path, tmp_path / "out", "--scheme", "demo") == 0
    with (tmp_path / "out" / INDEX_FILE).open() as handle:
        rows = list(csv.DictReader(handle))
    assert {f"{r['sub']}/{r['filename_o']}": r["dataset"] for r in rows} == sources
