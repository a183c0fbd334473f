"""Issue 25 on the demo, end to end: the catalog's synthetic demo ingested by the real pipeline with
``appearance: {enabled: true}``, then TSFmicro (difference + onset frames, its training recipe) and
MEGANet (the MESTI image) fitted under leave-one-subject-out.

The demo's classes are AU combinations rendered as facial motion, so a pooled UF1 of at least 0.9
comes only from appearance images that carry the motion from pixels to prediction (chance is 0.2).
"""
from __future__ import annotations

import json

import pytest

from schemas.store_spec import APPEARANCE_ARRAYS

from .conftest import write_catalog  # noqa: TID252
from .test_demo_end_to_end import DEMO_MIN_UF1, _catalog_demo_entry  # noqa: TID252

EPOCHS = {"tsfmicro": None, "meganet": "40"}  # None: the model's recipe (TSFmicro: 50 epochs)


@pytest.mark.slow
def test_tsfmicro_and_meganet_reach_the_demo_uf1_on_appearance_images(tmp_path, prefect_server, capsys):
    from flows.ingest import ingest_dataset
    from stag_cli.fit import main as stag_fit
    from stag_features.store import open_stores

    entry = _catalog_demo_entry()
    options = {**entry["options"], "pipeline": {**entry["options"]["pipeline"], "appearance": {"enabled": True}}}
    store = tmp_path / "demo.zarr"
    catalog = write_catalog(tmp_path, {"demo": {**entry, "options": options, "root": str(tmp_path / "demo_raw"),
                                                "store": str(store)}})
    counts = ingest_dataset(catalog=str(catalog), dataset="demo")
    assert counts["failed"] == 0 and counts["ok"] > 0, counts
    assert set(APPEARANCE_ARRAYS) <= set(open_stores([store])[0].metadata.layout.extra_arrays)

    for model, epochs in EPOCHS.items():
        out = tmp_path / model
        args = ["--store", str(store), "--scheme", "demo", "--protocol", "loso", "--model", model, "--seeds", "1",
                "--device", "cpu", "--out", str(out), "--no-checkpoints", "--quiet"]
        assert stag_fit(args + (["--epochs", epochs] if epochs else [])) == 0
        metrics = json.loads((out / "metrics.json").read_text())
        assert not any(i["substitution"] for i in metrics["inputs"]), metrics["inputs"]  # the papers' own inputs
        pooled = metrics["per_seed"]["1"]["pooled"]
        assert pooled["uf1"] >= DEMO_MIN_UF1, (model, pooled)
