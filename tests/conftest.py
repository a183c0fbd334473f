"""Shared test fixtures: where the real reference data lives, and a private
Prefect home so tests never touch the user's."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

# Prefect must see these before it is imported anywhere.
os.environ.setdefault("PREFECT_HOME", tempfile.mkdtemp(prefix="stag-prefect-home-"))
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("DO_NOT_TRACK", "1")

PROJECT_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = PROJECT_ROOT.parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """../shared/data relative to the project root (real data made outside the project)."""
    if not SHARED_DATA.is_dir():
        raise FileNotFoundError(f"real test data not found at {SHARED_DATA}")
    return SHARED_DATA
