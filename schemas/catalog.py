"""Catalog: the datasets named in ``data_catalog.yaml``.

Format::

    root: .                      # optional; the folder every path must stay inside,
                                 # relative to the catalog file (default: its folder)
    datasets:
      casme2:                    # the dataset's name
        adapter: casme2          # casme2 | samm | smic | casme3 | dfme | megc2019 | generic_csv | synthetic
        root: raw/CASME2/Cropped # raw frames (need not exist: records then have no frame source)
        annotations: raw/CASME2/CASME2-coding-20140508.xlsx   # must exist (except kind synthetic)
        store: stores/casme2.zarr   # local path, or an fsspec URL such as s3://bucket/casme2.zarr
        fps: 200                 # optional; frame rate when the sheet gives none
        default_scheme: casme2-5 # optional; a name from schemas/class_schemes.yaml
        options: {}              # optional; adapter-specific (e.g. sheet, flow_dir); options
                                 # named *_dir, *_file, *_path are paths, resolved like root

Relative paths are relative to the catalog file's folder. Every local path
(root, annotations, store, path options) must stay inside the catalog root
after ``..`` and symlinks are resolved. Unknown keys and escaping paths are
errors naming the key or path. A dataset whose annotation file is missing is
*unavailable*: the catalog loads, and using that dataset (``Catalog.get``)
raises the error naming the file, so that one absent dataset never blocks the
others. YAML is read with ``yaml.safe_load``: a catalog cannot construct
Python objects or run code.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

AdapterKind = Literal["casme2", "samm", "smic", "casme3", "dfme", "megc2019", "generic_csv", "synthetic"]
ADAPTER_KINDS: tuple[str, ...] = AdapterKind.__args__  # type: ignore[attr-defined]
# Kinds whose generator writes root and annotations on first use.
GENERATED_KINDS: frozenset[str] = frozenset({"synthetic"})
# Options whose name ends so are local paths: resolved and kept inside the root like the others.
PATH_OPTION_SUFFIXES: tuple[str, ...] = ("_dir", "_file", "_path")
_URL = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.\-]*://")


class CatalogError(ValueError):
    """A catalog that cannot be used, with the file and the key or path at fault."""


class MissingDataError(CatalogError):
    """A dataset whose annotation file is not on this machine."""


class DatasetEntry(BaseModel):
    """One dataset of the catalog, with every local path resolved."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    adapter: AdapterKind
    root: Path = Field(description="raw data root (frame folders / videos); may be absent")
    annotations: Path | None = Field(None, description="annotation sheet; optional for kind synthetic")
    store: str = Field(description="absolute local path or fsspec URL of the dataset's Zarr store")
    fps: float | None = Field(None, gt=0)
    default_scheme: str | None = None
    options: dict[str, object] = Field(default_factory=dict)

    @property
    def store_is_url(self) -> bool:
        """True when the store is a URL (s3://, gs://, memory://...), not a local path."""
        return bool(_URL.match(self.store))


class Catalog(BaseModel):
    """All datasets of a catalog file, by name."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    path: Path = Field(description="the catalog file")
    root: Path = Field(description="the folder every local path stays inside")
    datasets: dict[str, DatasetEntry] = Field(description="the datasets whose files are here")
    unavailable: dict[str, str] = Field(default_factory=dict, description="name -> why it cannot be used here")

    def names(self) -> list[str]:
        """Every dataset the catalog names, available or not, in file order."""
        return [*self.datasets, *self.unavailable]

    def get(self, name: str) -> DatasetEntry:
        """One dataset by name; the error lists the known names, or says why it is unavailable."""
        if name in self.unavailable:
            raise MissingDataError(self.unavailable[name])
        if name not in self.datasets:
            raise CatalogError(f"catalog {self.path}: no dataset {name!r}; known: {', '.join(sorted(self.names()))}")
        return self.datasets[name]


_TOP_KEYS = frozenset({"root", "datasets"})
_ENTRY_KEYS = frozenset({"name", "adapter", "root", "annotations", "store", "fps", "default_scheme", "options"})
_REQUIRED_ENTRY_KEYS = ("adapter", "root", "store")


def _inside(path: Path, written: str, base: Path, file: Path, key: str) -> Path:
    resolved = path.resolve()
    if resolved != base and base not in resolved.parents:
        raise CatalogError(f"catalog {file}: {key} {written} resolves to {resolved}, outside the catalog root {base}")
    return resolved


def _local_path(value: object, base: Path, file: Path, key: str) -> Path:
    """``value`` resolved against the catalog file's folder; it must stay inside ``base`` (the root)."""
    if not isinstance(value, str) or not value.strip():
        raise CatalogError(f"catalog {file}: {key} must be a path string, got {value!r}")
    path = Path(value).expanduser()
    return _inside(path if path.is_absolute() else file.parent / path, value, base, file, key)


def _entry(name: str, body: object, base: Path, file: Path) -> DatasetEntry:
    where = f"datasets.{name}"
    if not isinstance(body, dict):
        raise CatalogError(f"catalog {file}: {where} must be a mapping, got {type(body).__name__}")
    unknown = sorted(set(body) - _ENTRY_KEYS)
    if unknown:
        raise CatalogError(f"catalog {file}: unknown key {where}.{unknown[0]} (allowed: {', '.join(sorted(_ENTRY_KEYS))})")
    missing = [k for k in _REQUIRED_ENTRY_KEYS if k not in body]
    if missing:
        raise CatalogError(f"catalog {file}: {where} lacks required key {missing[0]!r}")
    if "name" in body and body["name"] != name:
        raise CatalogError(f"catalog {file}: {where}.name is {body['name']!r}, not {name!r}")
    kind = body["adapter"]
    if kind not in ADAPTER_KINDS:
        raise CatalogError(f"catalog {file}: {where}.adapter {kind!r} is not one of {', '.join(ADAPTER_KINDS)}")
    generated = kind in GENERATED_KINDS
    root = _local_path(body["root"], base, file, f"{where}.root")
    annotations = None
    if "annotations" in body and body["annotations"] is not None:
        annotations = _local_path(body["annotations"], base, file, f"{where}.annotations")
        if not generated and not annotations.is_file():
            raise MissingDataError(f"catalog {file}: {where}.annotations file {annotations} does not exist")
    elif not generated:
        raise CatalogError(f"catalog {file}: {where} lacks required key 'annotations'")
    store = body["store"]
    if not isinstance(store, str) or not store.strip():
        raise CatalogError(f"catalog {file}: {where}.store must be a path or URL string, got {store!r}")
    if not _URL.match(store):
        store = str(_local_path(store, base, file, f"{where}.store"))
    options = body.get("options") or {}
    if not isinstance(options, dict):
        raise CatalogError(f"catalog {file}: {where}.options must be a mapping, got {type(options).__name__}")
    options = {
        key: _local_path(value, base, file, f"{where}.options.{key}") if str(key).endswith(PATH_OPTION_SUFFIXES) else value
        for key, value in options.items()
    }
    default_scheme = body.get("default_scheme")
    if default_scheme is not None:
        from schemas.class_schemes import load_schemes  # local: class schemes import nothing from here

        known = load_schemes()
        if default_scheme not in known:
            raise CatalogError(
                f"catalog {file}: {where}.default_scheme {default_scheme!r} is not a class scheme; "
                f"known: {', '.join(sorted(known))}"
            )
    try:
        return DatasetEntry(
            name=name, adapter=kind, root=root, annotations=annotations, store=store,
            fps=body.get("fps"), default_scheme=default_scheme, options=options,
        )
    except ValidationError as exc:
        problems = "; ".join(f"{where}.{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise CatalogError(f"catalog {file}: {problems}") from exc


def load_catalog(path: Path | str) -> Catalog:
    """Read and check a catalog file (see the module docstring for the format)."""
    file = Path(path).expanduser().resolve()
    if not file.is_file():
        raise FileNotFoundError(f"catalog file {file} does not exist")
    try:
        data = yaml.safe_load(file.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise CatalogError(f"catalog {file}: not valid YAML (safe loader): {exc}") from exc
    if not isinstance(data, dict):
        raise CatalogError(f"catalog {file}: expected a mapping with a 'datasets' key, got {type(data).__name__}")
    unknown = sorted(set(data) - _TOP_KEYS)
    if unknown:
        raise CatalogError(f"catalog {file}: unknown key {unknown[0]!r} (allowed: {', '.join(sorted(_TOP_KEYS))})")
    root_value = data.get("root", ".")
    if not isinstance(root_value, str):
        raise CatalogError(f"catalog {file}: root must be a path string, got {root_value!r}")
    base = (file.parent / Path(root_value).expanduser()).resolve()
    datasets = data.get("datasets")
    if not isinstance(datasets, dict) or not datasets:
        raise CatalogError(f"catalog {file}: 'datasets' must be a non-empty mapping of name -> dataset")
    entries, unavailable = {}, {}
    for name, body in datasets.items():
        try:
            entries[str(name)] = _entry(str(name), body, base, file)
        except MissingDataError as exc:
            unavailable[str(name)] = str(exc)
    return Catalog(path=file, root=base, datasets=entries, unavailable=unavailable)
