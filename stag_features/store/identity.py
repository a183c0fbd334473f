"""Which store a run may use: what a store is built from (``StoreIdentity``) and the
read-only checks against what an existing store recorded.

``mismatch`` says what differs (schema version, dataset, config, layout); a
config that differs only in execution-only fields (``schemas.pipeline_config.
EXECUTION_ONLY``) is the same computation, and ``adopted`` lets a run take
the store's own recorded config and hash for it. ``check_store`` is the
read-only twin of ``stag_features.store.writer.ensure_store``, which creates or
rebuilds stores (the only writer).
"""
from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path

import zarr

from schemas.pipeline_config import PipelineConfig, with_added_defaults, without_execution
from schemas.store_config import CompositeImportConfig, StoreConfig
from schemas.store_spec import SCHEMA_VERSION, StoreLayout
from stag_features.store.lock import store_lock


class StoreMismatchError(ValueError):
    """An existing store was built differently from what this run would write."""


@dataclass(frozen=True)
class StoreIdentity:
    """What a store is built from; two runs may share a store only if these agree."""

    dataset: str
    producer: str  # "pipeline" (stag_features.extract.sample_pipeline) or "composite_import"
    config: dict  # the full producing config, as JSON
    config_hash: str
    layout: StoreLayout
    store_config: StoreConfig
    flow_units: str  # e.g. "px at crop size" or "normalised (image value/255, u and v centred)"


def config_diff(old: dict, new: dict, prefix: str = "") -> list[str]:
    """Dotted paths whose values differ between two config dicts, with both values."""
    diffs: list[str] = []
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key, "<absent>"), new.get(key, "<absent>")
        path = f"{prefix}{key}"
        if isinstance(a, dict) and isinstance(b, dict):
            diffs.extend(config_diff(a, b, path + "."))
        elif a != b:
            diffs.append(f"{path}: {json.dumps(a)[:60]} -> {json.dumps(b)[:60]}")
    return diffs


def config_defaults() -> dict:
    """Every config section's defaults, as stores record them (the pipeline's and the flow-image import's)."""
    return {**PipelineConfig().provenance(), "composite_import": CompositeImportConfig().model_dump(mode="json")}


def comparable(recorded: dict, current: dict) -> tuple[dict, dict]:
    """A store's recorded config and this run's, as the same computation would have both: without
    execution-only fields, the recorded one completed with fields added since at their defaults."""
    current = without_execution(current)
    return with_added_defaults(without_execution(recorded), current, config_defaults()), current


def recorded_layout(attrs: dict) -> dict:
    """A store's recorded layout with the fields added since at their defaults (as JSON), or as
    recorded where it is not a valid layout (then it differs from every identity's)."""
    recorded = attrs.get("layout", {})
    try:
        return StoreLayout.model_validate(recorded).model_dump(mode="json")
    except ValueError:
        return recorded


def mismatch(attrs: dict, identity: StoreIdentity) -> str | None:
    """What differs between a store's recorded attributes and ``identity`` (None if nothing does)."""
    if attrs.get("schema_version") != SCHEMA_VERSION:
        return f"schema version {attrs.get('schema_version')} (this code writes {SCHEMA_VERSION})"
    if attrs.get("dataset") != identity.dataset:
        return f"dataset {attrs.get('dataset')!r}, not {identity.dataset!r}"
    if attrs.get("config_hash") != identity.config_hash:
        diffs = config_diff(*comparable(attrs.get("pipeline_config", {}), identity.config)) or ["(hash only)"]
        shown = "; ".join(diffs[:5]) + (f"; and {len(diffs) - 5} more" if len(diffs) > 5 else "")
        return f"another pipeline config (hash {str(attrs.get('config_hash'))[:12]}, this run {identity.config_hash[:12]}): {shown}"
    recorded = recorded_layout(attrs)
    if recorded != identity.layout.model_dump(mode="json"):
        diffs = config_diff(recorded, identity.layout.model_dump(mode="json"))
        return f"another layout (ROIs, AUs, edges or class schemes): {'; '.join(diffs[:5])}"
    return None


def refusal(path: Path, problem: str) -> StoreMismatchError:
    """The error refusing the store at ``path`` for ``problem``, with the ways to proceed."""
    return StoreMismatchError(
        f"store {path} was built with {problem}. To proceed: write to another store path, "
        f"or rerun with --force to delete this store's samples and rebuild it with the new config, "
        f"or rerun with the config the store records (stag store info {path} --config > pipeline.yaml, then --config pipeline.yaml)."
    )


def recorded_attrs(path: str | Path, timeout: float) -> dict | None:
    """The group attributes of the store at ``path`` (read under its shared lock), None if there is none."""
    path = Path(path)
    if not (path / "zarr.json").is_file():
        return None
    with store_lock(path, exclusive=False, timeout=timeout):
        return dict(zarr.open_group(str(path), mode="r").attrs)


def adopted(identity: StoreIdentity, attrs: dict | None) -> StoreIdentity:
    """``identity``, or the same computation under the config and hash a store recorded (``attrs``).

    A store whose recorded config equals ``identity.config`` once execution-only fields are set
    aside (``schemas.pipeline_config.EXECUTION_ONLY``: threads, lock waits, scheduling) and fields
    added to the code since are taken at their defaults (``comparable``) was computed the same way,
    so its samples stand: a store written before a field left the hash (say ``tvl1.opencv_threads``)
    or before a field existed is opened, not refused, and its committed samples are skipped. Any
    other store keeps its mismatch, which ``mismatch`` reports.
    """
    recorded, digest = (attrs or {}).get("pipeline_config"), (attrs or {}).get("config_hash")
    if digest == identity.config_hash or not isinstance(recorded, dict) or not isinstance(digest, str):
        return identity
    old, new = comparable(recorded, identity.config)
    if old != new:
        return identity
    return replace(identity, config=recorded, config_hash=digest)


def with_recorded_hash(path: str | Path, identity: StoreIdentity) -> StoreIdentity:
    """``adopted`` against the store at ``path``, if there is one (reads its attributes only)."""
    return adopted(identity, recorded_attrs(path, identity.store_config.lock_timeout_s))


def check_store(path: str | Path, identity: StoreIdentity) -> StoreIdentity | None:
    """Read-only twin of ``ensure_store`` without ``rebuild``: None if there is no store at ``path``,
    the identity it is opened under (``adopted``) if it matches ``identity``; raises the
    StoreMismatchError ``ensure_store`` would raise if it was built differently. Writes nothing."""
    attrs = recorded_attrs(path, identity.store_config.lock_timeout_s)
    if attrs is None:
        return None
    identity = adopted(identity, attrs)
    problem = mismatch(attrs, identity)
    if problem is not None:
        raise refusal(Path(path), problem)
    return identity
