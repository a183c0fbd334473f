"""ingest_dataset on the tiny synthetic demo: round trip, skip on rerun, config change."""
from __future__ import annotations

import shutil

import numpy as np
import yaml

from flows.ingest import ingest_dataset
from schemas.catalog import load_catalog
from stag_cli.ingest import ingest_main
from stag_features.adapters import load_dataset
from stag_features.extract.sample_pipeline import extract_sample
from stag_features.ingest.producers import PipelineProducer
from stag_features.ingest.steps import entry_pipeline_config
from stag_features.store.query import open_store, read_sample
from stag_features.store.slots import sample_arrays
from stag_features.store.validate import validate_store


def test_every_stored_array_equals_what_the_extractor_returns(threaded_demo_store):
    catalog, store = threaded_demo_store
    entry = load_catalog(catalog).get("demo")
    config = entry_pipeline_config(entry)
    layout = PipelineProducer(config).identity(entry).layout
    records = load_dataset(entry).records
    assert sorted(open_store(store)["sample"].values) == sorted(r.sample_id for r in records)
    for record in records[::4]:  # 3 of the 10: the extractor is the costly part
        expected = sample_arrays(extract_sample(record, config), layout, config.store.flow_dtype)
        stored = read_sample(store, record.sample_id)
        for name, value in expected.items():
            np.testing.assert_array_equal(stored[name], value, err_msg=f"{record.sample_id}: {name}")
    report = validate_store(store)
    assert report.ok and report.committed == 10, report.text()


def test_rerun_skips_everything(threaded_demo_store):
    catalog, store = threaded_demo_store
    written = {p: p.stat().st_mtime_ns for p in store.rglob("*") if p.is_file()}
    counts = ingest_dataset(catalog=str(catalog), dataset="demo")
    assert counts == {"ok": 0, "skipped": 10, "failed": 0, "bad_rows": 0}
    assert {p: p.stat().st_mtime_ns for p in store.rglob("*") if p.is_file()} == written  # nothing rewritten


def test_changed_config_is_refused_then_force_recomputes(threaded_demo_store, tmp_path, capsys):
    catalog, store = threaded_demo_store
    body = yaml.safe_load(catalog.read_text())
    copy = tmp_path / "demo.zarr"
    shutil.copytree(store, copy)
    body["datasets"]["demo"]["store"] = str(copy)
    body["datasets"]["demo"]["options"]["pipeline"]["tvl1"]["epsilon"] = 0.04  # one value changed
    changed = tmp_path / "catalog.yaml"
    changed.write_text(yaml.safe_dump(body))
    assert ingest_main(["--catalog", str(changed), "--dataset", "demo"]) == 2
    message = capsys.readouterr().err
    assert "tvl1.epsilon: 0.05 -> 0.04" in message and "--force" in message
    assert open_store(copy).sizes["sample"] == 10  # refused: untouched
    assert ingest_main(["--catalog", str(changed), "--dataset", "demo", "--force"]) == 0
    ds = open_store(copy)
    assert ds.sizes["sample"] == 10 and ds.attrs["pipeline_config"]["tvl1"]["epsilon"] == 0.04
    assert validate_store(copy).ok
