"""Adapters: one module per dataset kind, each turning an annotation file into SampleRecords.

Every module ``stag_features.adapters.<kind>`` exposes
``load_records(entry: DatasetEntry) -> AdapterResult``; ``load_dataset`` picks
the module by the catalog entry's adapter kind and imports it only then.
The sheet adapters declare their sheet as a ``sheet_layout.SheetLayout``;
``base`` holds what every adapter returns, ``sheet_reading`` the table and
cell readers.
"""
from __future__ import annotations

import importlib

from schemas.catalog import ADAPTER_KINDS, DatasetEntry
from stag_features.adapters.base import AdapterResult, AnnotationError, BadRow, entry_schemes

# kind -> module; every catalog kind has one ("synthetic" is the generator's adapter).
ADAPTER_MODULES: dict[str, str] = {kind: f"stag_features.adapters.{kind}" for kind in ADAPTER_KINDS}

__all__ = ["ADAPTER_MODULES", "AdapterResult", "AnnotationError", "BadRow", "dataset_schemes", "load_dataset"]


def load_dataset(entry: DatasetEntry) -> AdapterResult:
    """Records of one catalog dataset, with the rows that failed and the file's variant."""
    return _adapter_module(entry).load_records(entry)


def dataset_schemes(entry: DatasetEntry) -> dict[str, tuple[str, ...]]:
    """Scheme name -> classes (index order) for an entry's records.

    An adapter that defines its own classes (the synthetic generator's
    emotions) exposes ``class_schemes(entry)``; every other adapter labels with
    the packaged schemes of schemas/class_schemes.yaml that apply to it.
    """
    own = getattr(_adapter_module(entry), "class_schemes", None)
    if own is not None:
        return {name: tuple(classes) for name, classes in own(entry).items()}
    return {scheme.name: tuple(scheme.classes) for scheme in entry_schemes(entry)}


def _adapter_module(entry: DatasetEntry):
    if entry.adapter not in ADAPTER_MODULES:
        raise ValueError(f"dataset {entry.name!r}: no adapter for kind {entry.adapter!r}; known: {sorted(ADAPTER_MODULES)}")
    module_name = ADAPTER_MODULES[entry.adapter]
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name != module_name:
            raise  # the adapter exists but one of its own imports is missing
        raise ValueError(f"dataset {entry.name!r}: adapter module {module_name} for kind {entry.adapter!r} is not installed") from exc
    return module
