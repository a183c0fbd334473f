"""The layering contracts of pyproject.toml catch what they are meant to: a copy of the project
passes them as it is, and fails them once feature code imports an orchestrator or the trainer
imports zarr."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

PROJECT_ROOT = Path(__file__).resolve().parents[1]

PACKAGES = ("schemas", "stag_features", "stag_model", "flows", "stag_cli")
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"


@pytest.fixture
def project_copy(tmp_path) -> Path:
    """The project's packages and pyproject.toml, copied without caches."""
    for package in PACKAGES:
        shutil.copytree(PROJECT_ROOT / package, tmp_path / package, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(PROJECT_ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    return tmp_path


def _lint(root: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(root)}  # the copy, not the installed project
    return subprocess.run([str(LINT_IMPORTS), "--no-cache"], cwd=root, env=env, capture_output=True, text=True,
                          timeout=300)


def test_the_project_keeps_its_contracts(project_copy):
    run = _lint(project_copy)
    assert run.returncode == 0, run.stdout[-3000:]
    assert "4 kept, 0 broken" in run.stdout


def test_feature_code_importing_flows_breaks_the_contract(project_copy):
    (project_copy / "stag_features" / "extract" / "orchestrated.py").write_text("import flows.ingest\n")
    run = _lint(project_copy)
    assert run.returncode == 1
    assert "stag_features.extract.orchestrated -> flows.ingest" in run.stdout
    assert "Feature code knows no orchestrator BROKEN" in " ".join(run.stdout.split())


def test_the_trainer_importing_zarr_breaks_the_contract(project_copy):
    (project_copy / "stag_model" / "raw_reads.py").write_text("import zarr\n")
    run = _lint(project_copy)
    assert run.returncode == 1
    assert "stag_model.raw_reads -> zarr" in run.stdout
    assert "Only stag_features.store touches Zarr BROKEN" in " ".join(run.stdout.split())
