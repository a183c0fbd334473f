"""The adapter registry: one module per catalog kind, imported only when used."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

from schemas.catalog import ADAPTER_KINDS, DatasetEntry
from stag_features import adapters


def test_every_catalog_kind_has_a_module_name() -> None:
    assert set(adapters.ADAPTER_MODULES) == set(ADAPTER_KINDS)
    for kind in ("casme2", "samm", "smic", "casme3", "dfme", "megc2019", "generic_csv"):
        module = __import__(adapters.ADAPTER_MODULES[kind], fromlist=["load_records"])
        assert callable(module.load_records)


def test_a_missing_adapter_module_is_a_clear_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setitem(adapters.ADAPTER_MODULES, "casme2", "stag_features.adapters.not_written_yet")
    entry = DatasetEntry(name="x", adapter="casme2", root=tmp_path, annotations=tmp_path / "a.xlsx", store="s")
    with pytest.raises(ValueError, match="adapter module stag_features.adapters.not_written_yet .* is not installed"):
        adapters.load_dataset(entry)
    assert "stag_features.adapters.not_written_yet" not in sys.modules
