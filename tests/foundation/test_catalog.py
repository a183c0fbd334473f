"""Catalog: paths resolved inside the catalog root, clear errors, safe YAML only."""
from __future__ import annotations

from pathlib import Path

import pytest

from schemas.catalog import CatalogError, MissingDataError, load_catalog


def _write(folder: Path, text: str) -> Path:
    path = folder / "data_catalog.yaml"
    path.write_text(text)
    return path


@pytest.fixture()
def project(tmp_path: Path) -> Path:
    (tmp_path / "annotations").mkdir()
    (tmp_path / "annotations" / "coding.xlsx").write_bytes(b"placeholder bytes: the catalog only checks existence")
    return tmp_path


def test_valid_catalog_resolves_paths_relative_to_its_folder(project: Path) -> None:
    path = _write(project, """
datasets:
  casme2:
    adapter: casme2
    root: raw/casme2
    annotations: annotations/coding.xlsx
    store: stores/casme2.zarr
    fps: 200
    default_scheme: casme2-5
  remote:
    adapter: casme2
    root: raw/casme2
    annotations: annotations/../annotations/coding.xlsx
    store: s3://bucket/casme2.zarr
    options: {sheet: Sheet1, flow_dir: flows}
  synth:
    adapter: synthetic
    root: synthetic/raw
    store: stores/synth.zarr
""")
    catalog = load_catalog(path)
    entry = catalog.get("casme2")
    assert entry.root == project.resolve() / "raw" / "casme2"  # need not exist
    assert entry.annotations == project.resolve() / "annotations" / "coding.xlsx"
    assert entry.store == str(project.resolve() / "stores" / "casme2.zarr") and not entry.store_is_url
    assert entry.fps == 200.0 and entry.default_scheme == "casme2-5"
    remote = catalog.get("remote")
    assert remote.store == "s3://bucket/casme2.zarr" and remote.store_is_url
    assert remote.options == {"sheet": "Sheet1", "flow_dir": project.resolve() / "flows"}
    synth = catalog.get("synth")
    assert synth.annotations is None and not synth.root.exists()
    with pytest.raises(CatalogError, match="no dataset 'nope'; known: casme2, remote, synth"):
        catalog.get("nope")


def test_catalog_root_key_widens_the_allowed_folder(project: Path) -> None:
    """Paths are relative to the catalog file; ``root`` only says how far they may reach."""
    sub = project / "conf"
    sub.mkdir()
    body = "datasets:\n  d: {adapter: casme2, root: raw, annotations: ../annotations/coding.xlsx, store: s.zarr}\n"
    with pytest.raises(CatalogError, match="outside the catalog root"):
        load_catalog(_write(sub, body))
    entry = load_catalog(_write(sub, "root: ..\n" + body)).get("d")
    assert entry.annotations == project.resolve() / "annotations" / "coding.xlsx"
    assert entry.root == sub.resolve() / "raw" and entry.store == str(sub.resolve() / "s.zarr")


def test_a_dataset_whose_sheet_is_missing_does_not_block_the_others(project: Path) -> None:
    path = _write(project, "datasets:\n"
                           "  gone: {adapter: casme2, root: r, annotations: annotations/missing.xlsx, store: s}\n"
                           "  here: {adapter: casme2, root: r, annotations: annotations/coding.xlsx, store: t}\n")
    catalog = load_catalog(path)
    assert catalog.names() == ["here", "gone"] and list(catalog.datasets) == ["here"]
    assert catalog.get("here").annotations.name == "coding.xlsx"
    with pytest.raises(MissingDataError, match="datasets.gone.annotations file .*annotations/missing.xlsx does not exist"):
        catalog.get("gone")


@pytest.mark.parametrize(
    "body, message",
    [
        ("datasets:\n  d: {adapter: casme2, root: r, annotations: annotations/coding.xlsx, store: s, colour: red}",
         "unknown key datasets.d.colour"),
        ("version: 2\ndatasets:\n  d: {adapter: casme2, root: r, annotations: annotations/coding.xlsx, store: s}",
         "unknown key 'version'"),
        ("datasets:\n  d: {adapter: casme2, root: r, store: s}", "lacks required key 'annotations'"),
        ("datasets:\n  d: {adapter: casme9, root: r, annotations: annotations/coding.xlsx, store: s}",
         "adapter 'casme9' is not one of"),
        ("datasets:\n  d: {adapter: casme2, root: ../outside, annotations: annotations/coding.xlsx, store: s}",
         "datasets.d.root ../outside resolves to .*outside the catalog root"),
        ("datasets:\n  d: {adapter: casme2, root: r, annotations: /etc/hostname, store: s}",
         "datasets.d.annotations /etc/hostname .*outside the catalog root"),
        ("datasets:\n  d: {adapter: casme2, root: r, annotations: annotations/coding.xlsx, store: ../../s.zarr}",
         "datasets.d.store .*outside the catalog root"),
        ("datasets:\n  d: {adapter: casme2, root: r, annotations: annotations/coding.xlsx, store: s, options: {flow_dir: ../f}}",
         "datasets.d.options.flow_dir .*outside the catalog root"),
        ("datasets:\n  d: {adapter: casme2, root: r, annotations: annotations/coding.xlsx, store: s, default_scheme: x-9}",
         "default_scheme 'x-9' is not a class scheme"),
        ("datasets:\n  d: {adapter: casme2, root: r, annotations: annotations/coding.xlsx, store: s, fps: -5}",
         "datasets.d.fps"),
        ("datasets: {}", "non-empty mapping"),
    ],
)
def test_bad_catalogs_name_the_key_or_path(project: Path, body: str, message: str) -> None:
    with pytest.raises(CatalogError, match=message):
        load_catalog(_write(project, body))


def test_symlink_out_of_the_root_is_refused(project: Path, tmp_path_factory: pytest.TempPathFactory) -> None:
    outside = tmp_path_factory.mktemp("outside") / "sheet.xlsx"
    outside.write_bytes(b"x")
    (project / "annotations" / "link.xlsx").symlink_to(outside)
    body = "datasets:\n  d: {adapter: casme2, root: r, annotations: annotations/link.xlsx, store: s}"
    with pytest.raises(CatalogError, match=r"annotations/link.xlsx resolves to .*sheet.xlsx, outside the catalog root"):
        load_catalog(_write(project, body))


def test_yaml_is_loaded_safely(project: Path) -> None:
    body = "datasets:\n  d: !!python/object/apply:os.system ['touch pwned']\n"
    with pytest.raises(CatalogError, match="not valid YAML"):
        load_catalog(_write(project, body))
    assert not (project / "pwned").exists()
    with pytest.raises(FileNotFoundError, match="absent.yaml"):
        load_catalog(project / "absent.yaml")
