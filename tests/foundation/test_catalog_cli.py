"""`stag catalog describe` on a catalog of the real sheets."""
from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from stag_cli import catalog as catalog_cli


def run(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="stag")
    catalog_cli.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.handler(args)


@pytest.fixture()
def catalog(tmp_path: Path, shared_data: Path) -> Path:
    annotations = shared_data / "annotations"
    bad = tmp_path / "bad.csv"
    bad.write_text("subject,clip,onset,apex,offset,emotion,aus\np1,c1,5,6,7,happy,4\np1,c1,8,9,10,happy,4\np2,c2,9,9,3,sad,4\n")
    path = tmp_path / "data_catalog.yaml"
    path.write_text(f"""
root: /
datasets:
  casme2: {{adapter: casme2, root: {tmp_path}/raw, annotations: {annotations}/casme2/CASME2-coding-20140508.xlsx,
            store: {tmp_path}/casme2.zarr, default_scheme: casme2-5}}
  megc2019: {{adapter: megc2019, root: {tmp_path}/raw, annotations: {annotations}/megc2019/combined_3class_gt.csv,
              store: {tmp_path}/megc.zarr, default_scheme: megc2019-3}}
  megc441: {{adapter: megc2019, root: {tmp_path}/raw,
             annotations: {annotations}/megc2019/combined_3class_gt_441_variant.csv, store: {tmp_path}/m441.zarr}}
  lab: {{adapter: generic_csv, root: {tmp_path}/raw, annotations: {bad}, store: {tmp_path}/lab.zarr}}
""")
    return path


def test_describe_one_dataset(catalog: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["catalog", "describe", "--catalog", str(catalog), "--dataset", "casme2"]) == 0
    out = capsys.readouterr().out
    assert "clips: 255   subjects: 26" in out
    assert "scheme casme2-5 (default): keeps 246 of 255 clips" in out
    for line in ("0 happiness      32", "1 disgust        63", "2 repression     27", "3 surprise       25", "4 others         99"):
        assert line in out
    assert "bad rows: 0" in out and "emotions: others 99, disgust 63" in out


def test_describe_all_reports_variants_errors_and_bad_rows(catalog: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["catalog", "describe", "--catalog", str(catalog)]) == 1  # the 441-row variant fails
    out = capsys.readouterr().out
    assert "clips: 442   subjects: 68" in out
    assert "class       casme2  samm  smic  clips" in out
    assert "0 negative      88    92    70    250" in out
    assert "total          145   133   164    442" in out
    assert "ERROR: annotation file" in out and "'blank-lines' variant" in out
    assert "bad rows: 2" in out
    assert "3    bad.csv  duplicate clip id 'p1/c1' (first at row 2)" in out
    assert "4    bad.csv  sample p2/c2: onset 9 is after offset 3" in out


def test_unknown_dataset_is_an_error(catalog: Path) -> None:
    with pytest.raises(ValueError, match="no dataset 'nope'"):
        run(["catalog", "describe", "--catalog", str(catalog), "--dataset", "nope"])


def test_describe_counts_an_adapter_defined_scheme(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The synthetic demo labels with its own scheme (the generator's emotions),
    which is not in class_schemes.yaml: describe must count it, not crash."""
    path = tmp_path / "data_catalog.yaml"
    path.write_text(f"""
datasets:
  demo: {{adapter: synthetic, root: {tmp_path}/raw, store: {tmp_path}/demo.zarr,
          options: {{n_subjects: 1, clips_per_emotion: 1, seed: 0}}}}
""")
    from schemas.synthetic_config import SyntheticConfig

    emotions = list(SyntheticConfig().emotions)
    assert run(["catalog", "describe", "--catalog", str(path)]) == 0
    out = capsys.readouterr().out
    assert f"scheme demo: keeps {len(emotions)} of {len(emotions)} clips" in out
    for index, emotion in enumerate(emotions):
        assert f"{index} {emotion}" in out
