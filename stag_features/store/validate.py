"""Check a store against store spec v1 (schemas/store_spec.py, docs/store.md).

    report = validate_store("stores/demo.zarr")
    print(report.text()); report.ok

Checks, each problem reported with the array or sample and both values that
disagree:
- the group: required attributes, schema version, a parseable layout;
- every array of the spec: present, dimension names, dtype, shape against the
  layout, one sample per chunk along ``sample`` (the rest whole), no shards,
  the same number of slots in every per-sample array;
- the group arrays agree with the attributes (ROI, AU, scheme names, edges);
- every committed sample is complete and intact: its chunk of every per-sample
  array is on disk, of the size written (its recorded digest), decodes, and its
  feature arrays are finite (``deep``: every chunk file's sha256 equals the one
  recorded before its commit flag); it has a sample id, an input hash and the
  store's config hash, no failure recorded, and consistent contents (time
  length, selected frames, class indices within their scheme).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import zarr

from schemas.store_spec import (
    BAD_ROW_PREFIX,
    GROUP_ARRAYS,
    REQUIRED_ATTRS,
    SAMPLE_ID,
    SCHEMA_VERSION,
    StoreLayout,
)
from stag_features.store.integrity import damage
from stag_features.store.migrate import sample_problem
from stag_features.store.rows import read_column

MAX_SHOWN = 20  # problems listed by text(); all are kept in .problems


@dataclass
class ValidationReport:
    path: str
    problems: list[str] = field(default_factory=list)
    slots: int = 0
    committed: int = 0
    failed: int = 0
    damaged: int = 0

    @property
    def ok(self) -> bool:
        return not self.problems

    def text(self) -> str:
        head = (f"{self.path}: {'valid' if self.ok else 'INVALID'} (spec v{SCHEMA_VERSION}); "
                f"{self.slots} slots, {self.committed} committed ({self.damaged} damaged), {self.failed} failed")
        shown = [f"  - {p}" for p in self.problems[:MAX_SHOWN]]
        if len(self.problems) > MAX_SHOWN:
            shown.append(f"  ... and {len(self.problems) - MAX_SHOWN} more problems")
        return "\n".join([head, *shown])


def _dtype_ok(array: zarr.Array, expected: str) -> bool:
    actual = array.dtype
    if expected == "str":
        return actual.kind in ("T", "U", "O")
    return np.dtype(actual) == np.dtype(expected)


def _check_arrays(group: zarr.Group, layout: StoreLayout, flow_dtype: str, report: ValidationReport) -> int | None:
    slots: set[int] = set()
    for spec in layout.sample_arrays() + GROUP_ARRAYS:
        if spec.name not in group:
            report.problems.append(f"array {spec.name!r} is missing")
            continue
        array = group[spec.name]
        dims = tuple(array.metadata.dimension_names or ())
        if dims != spec.dims:
            report.problems.append(f"array {spec.name!r}: dimension names {dims}, spec {spec.dims}")
        expected_dtype = flow_dtype if spec.dtype == "flow" else spec.dtype
        if not _dtype_ok(array, expected_dtype):
            report.problems.append(f"array {spec.name!r}: dtype {array.dtype}, spec {expected_dtype}")
        if array.shards is not None:
            report.problems.append(f"array {spec.name!r} is sharded ({array.shards}); the spec forbids shards")
        entry = layout.shape(spec)
        shape = tuple(array.shape[1:]) if spec.per_sample else tuple(array.shape)
        if shape != entry:
            report.problems.append(f"array {spec.name!r}: shape {array.shape}, layout gives {entry} after sample")
        if spec.per_sample:
            slots.add(array.shape[0])
            if array.chunks[0] != 1 or tuple(array.chunks[1:]) != tuple(max(1, n) for n in array.shape[1:]):
                report.problems.append(f"array {spec.name!r}: chunks {array.chunks}, spec (1, {array.shape[1:]})")
    if len(slots) > 1:
        report.problems.append(f"per-sample arrays disagree on the number of slots: {sorted(slots)}")
        return None
    return slots.pop() if slots else 0


def _check_names(group: zarr.Group, layout: StoreLayout, report: ValidationReport) -> None:
    expected = {"roi_name": list(layout.roi_names), "au_name": list(layout.au_names),
                "scheme_name": list(layout.class_schemes)}
    for name, names in expected.items():
        if name in group and [str(v) for v in group[name][:].tolist()] != names:
            report.problems.append(f"array {name!r} holds {group[name][:].tolist()}, the attributes say {names}")
    if "edge_index" in group and group["edge_index"].shape[0]:
        edges = [tuple(e) for e in group["edge_index"][:].tolist()]
        if edges != [tuple(e) for e in layout.edges]:
            report.problems.append(f"array 'edge_index' disagrees with the layout's edges ({len(edges)} edges)")


def _column(group: zarr.Group, name: str, slots: int) -> np.ndarray | None:
    """A whole per-sample column, or None when a damaged chunk stops it from being read whole."""
    values, broken = read_column(group[name])
    if broken and name != SAMPLE_ID:
        return None  # a control column: its per-sample meaning is lost
    return values  # a damaged id reads as '': the per-sample checks name its slot


def _check_samples(path: Path, group: zarr.Group, layout: StoreLayout, config_hash: str, report: ValidationReport,
                   deep: bool) -> None:
    names = ("sample_id", "committed", "input_hash", "config_hash", "failure_stage")
    column = {n: _column(group, n, report.slots) for n in names}
    if any(v is None for v in column.values()):
        broken = [n for n, v in column.items() if v is None]
        report.problems.append(f"arrays {broken} cannot be read whole (a damaged chunk); the store needs a rebuild")
        return
    report.committed = int(column["committed"].sum())
    report.failed = int(sum(bool(s) for s in column["failure_stage"]))
    sizes = [len(c) for c in layout.class_schemes.values()]
    damaged = damage(path, deep=deep)
    for slot in np.flatnonzero(column["committed"]):
        sid = str(column["sample_id"][slot])
        where = f"committed sample {sid!r} (slot {slot})"
        if not sid or sid.startswith(BAD_ROW_PREFIX):
            report.problems.append(f"{where}: no valid sample id")
        if str(column["failure_stage"][slot]):
            report.problems.append(f"{where}: also records a failure at stage {column['failure_stage'][slot]!r}")
        problem = damaged.get(int(slot)) or sample_problem(group, path, int(slot))
        if problem:
            report.damaged += 1
            report.problems.append(f"{where}: {problem}")
            continue  # its contents cannot be trusted
        if not str(column["input_hash"][slot]):
            report.problems.append(f"{where}: no input hash")
        if str(column["config_hash"][slot]) != config_hash:
            report.problems.append(f"{where}: config hash {str(column['config_hash'][slot])[:12]}, store {config_hash[:12]}")
        n_time = int(group["n_time"][slot])
        if not 1 <= n_time <= layout.time:
            report.problems.append(f"{where}: n_time {n_time} outside 1..{layout.time}")
        selected = group["selected_frames"][slot]
        if np.any(selected < 0) or np.any(selected >= max(n_time, 1)):
            report.problems.append(f"{where}: selected frames {selected.tolist()} outside 0..{n_time - 1}")
        for label, size, scheme in zip(group["label"][slot].tolist(), sizes, layout.class_schemes):
            if not -1 <= label < size:
                report.problems.append(f"{where}: label {label} outside -1..{size - 1} of scheme {scheme!r}")


def validate_store(path: str | Path, deep: bool = False) -> ValidationReport:
    """Every check of the module docstring; never raises for a bad store, only reports."""
    path = Path(path)
    report = ValidationReport(str(path))
    if not (path / "zarr.json").is_file():
        report.problems.append("no zarr.json: not a Zarr v3 group")
        return report
    group = zarr.open_group(str(path), mode="r")
    attrs = dict(group.attrs)
    missing = [a for a in REQUIRED_ATTRS if a not in attrs]
    if missing:
        report.problems.append(f"group attributes missing: {missing}")
        return report
    if attrs["schema_version"] == 1:
        report.problems.append(f"written under store spec v1 (no chunk digests): run `stag store migrate {path}` (or "
                               "stag-ingest) to upgrade it in place; its samples are kept")
        return report
    if attrs["schema_version"] != SCHEMA_VERSION:
        report.problems.append(f"schema_version {attrs['schema_version']}, this validator checks {SCHEMA_VERSION}")
        return report
    try:
        layout = StoreLayout.model_validate(attrs["layout"])
    except ValueError as exc:
        report.problems.append(f"attribute 'layout' is not a valid StoreLayout: {exc}")
        return report
    if list(layout.roi_names) != attrs["roi_names"] or list(layout.au_names) != attrs["au_names"]:
        report.problems.append("attributes roi_names / au_names disagree with the layout")
    if {k: list(v) for k, v in layout.class_schemes.items()} != attrs["class_schemes"]:
        report.problems.append("attribute class_schemes disagrees with the layout")
    flow_dtype = attrs.get("store_config", {}).get("flow_dtype", "float16")
    report.slots = _check_arrays(group, layout, flow_dtype, report) or 0
    _check_names(group, layout, report)
    if report.ok:
        _check_samples(path, group, layout, str(attrs["config_hash"]), report, deep)
    return report
