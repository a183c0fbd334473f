"""Read feature stores: the API the trainer, the reports and the figures use.

    reader, = open_stores(["stores/casme2.zarr"])
    reader.metadata.roi_names, reader.metadata.flow_units     # group metadata
    slots, labels = reader.labelled("casme2-5")               # committed samples with a class
    reader.column("subject", slots)                           # any per-sample array, as numpy
    reader.read("flow", slots)                                # float32 (n, K, 2, H, W), a batch at once

Slots are positions along the store's ``sample`` dimension. Only committed
samples are handed out (``visible_slots``: the one rule every reader applies,
``stag_features.store.query`` included), read under the store's shared lock so
that no resize is half done. ``read`` takes the fast whole-batch chunk path
(``stag_features.store.rows``). A reader pickles as its path and metadata, so
DataLoader worker processes open the arrays again, once each.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import zarr

from schemas.store_spec import (
    ARRAYS_BY_NAME,
    COMMITTED,
    FAILURE_STAGE,
    FEATURE_ARRAYS,
    LABEL,
    SAMPLE_ID,
    SCHEME_NAME,
    StoreLayout,
)
from stag_features.store.integrity import damage
from stag_features.store.lock import store_lock
from stag_features.store.rows import DECODE_ERRORS, RowError, float32_empty, read_column, read_rows


def visible_slots(committed: np.ndarray, failure_stage: np.ndarray) -> np.ndarray:
    """Slots a reader may hand out: committed, and not recording a failure (a slot holding both is
    inconsistent, which ``stag store validate`` reports and a rerun recomputes)."""
    failed = np.array([bool(str(s)) for s in np.asarray(failure_stage).tolist()], dtype=bool)
    return np.flatnonzero(np.asarray(committed, dtype=bool) & ~failed)


def as_strings(values: np.ndarray) -> np.ndarray:
    """Fixed-width numpy strings from zarr's variable-length string arrays."""
    return np.array([str(v) for v in np.asarray(values).tolist()], dtype=str).reshape(np.shape(values))


class DamagedSampleError(ValueError):
    """A committed sample whose data is missing, undecodable or not finite; the message names the
    store, the sample and the array, and how to repair it."""


def missing_store(path: Path) -> FileNotFoundError:
    return FileNotFoundError(f"no feature store at {path} (zarr.json missing); build one with stag-ingest")


@dataclass(frozen=True)
class StoreMetadata:
    """What a store says about itself (its group attributes), typed."""

    path: Path
    dataset: str
    producer: str
    flow_units: str
    config_hash: str
    layout: StoreLayout
    attrs: dict = field(repr=False)  # every group attribute as recorded (pipeline_config, created, ...)

    @property
    def roi_names(self) -> tuple[str, ...]:
        return self.layout.roi_names

    @property
    def au_names(self) -> tuple[str, ...]:
        return self.layout.au_names

    @property
    def class_schemes(self) -> dict[str, tuple[str, ...]]:
        return dict(self.layout.class_schemes)

    @property
    def edge_index(self) -> np.ndarray:
        """(E, 2) int64 ROI index pairs of the static graph."""
        return np.asarray(self.layout.edges, dtype=np.int64).reshape(-1, 2)

    def entry_shape(self, name: str) -> tuple[int, ...]:
        """Shape of one sample's entry of a per-sample array (of the whole array for group arrays)."""
        return self.layout.shape(ARRAYS_BY_NAME[name])


def read_metadata(path: Path) -> StoreMetadata:
    """The metadata of the store at ``path`` (read under its shared lock)."""
    if not (path / "zarr.json").is_file():
        raise missing_store(path)
    with store_lock(path, exclusive=False):
        attrs = dict(zarr.open_group(str(path), mode="r").attrs)
    try:
        layout = StoreLayout.model_validate(attrs["layout"])
    except (KeyError, ValueError) as exc:
        raise ValueError(f"store {path}: its 'layout' attribute is missing or invalid ({exc}); "
                         f"see stag store validate {path}") from None
    return StoreMetadata(path=path, dataset=str(attrs.get("dataset", path.stem)), producer=str(attrs.get("producer")),
                         flow_units=str(attrs.get("flow_units", "")), config_hash=str(attrs.get("config_hash", "")),
                         layout=layout, attrs=attrs)


class StoreReader:
    """One feature store, read-only: metadata, visible samples, named arrays for a set of slots."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.metadata = read_metadata(self.path)
        self._arrays: dict[str, zarr.Array] = {}
        self._damage: dict[int, str] | None = None

    def __getstate__(self) -> dict:
        return {"path": self.path, "metadata": self.metadata}  # arrays are opened again where unpickled

    def __setstate__(self, state: dict) -> None:
        self.path, self.metadata, self._arrays, self._damage = state["path"], state["metadata"], {}, None

    def check_intact(self, slots: Sequence[int] | np.ndarray) -> None:
        """Raise DamagedSampleError for the first of ``slots`` whose chunk files are missing or of
        another size than written (``integrity.damage``, looked up once per reader)."""
        if self._damage is None:
            self._damage = damage(self.path)
        for slot in np.asarray(slots, dtype=np.int64).tolist():
            if slot in self._damage:
                name, _, reason = self._damage[slot].partition(": ")
                raise self._damaged(slot, name, reason)

    def _array(self, name: str) -> zarr.Array:
        if name not in ARRAYS_BY_NAME:
            raise KeyError(f"store {self.path}: no array {name!r} in the store spec")
        if name not in self._arrays:
            with store_lock(self.path, exclusive=False):
                group = zarr.open_group(str(self.path), mode="r")
                for array_name in ARRAYS_BY_NAME:  # opened together: one metadata read per array, once
                    if array_name in group:
                        self._arrays[array_name] = group[array_name]
            if name not in self._arrays:
                raise KeyError(f"store {self.path} has no array {name!r}; see stag store validate {self.path}")
        return self._arrays[name]

    def slot_count(self) -> int:
        """Allocated slots (committed or not)."""
        with store_lock(self.path, exclusive=False):
            return int(zarr.open_group(str(self.path), mode="r")[COMMITTED].shape[0])

    def committed(self) -> np.ndarray:
        """Slots of the committed samples (``visible_slots``), in slot order."""
        with store_lock(self.path, exclusive=False):
            group = zarr.open_group(str(self.path), mode="r")
            flags, failures = group[COMMITTED][:], group[FAILURE_STAGE][:]
        return visible_slots(flags, failures)

    def labelled(self, scheme: str) -> tuple[np.ndarray, np.ndarray]:
        """(slots, class indices (int64)) of the committed samples that have a class in ``scheme``."""
        schemes = self.metadata.class_schemes
        if scheme not in schemes:
            raise KeyError(f"store {self.path} has no class scheme {scheme!r}; it has {sorted(schemes)}")
        slots = self.committed()
        order = [str(s) for s in self._array(SCHEME_NAME)[:]]
        labels = np.asarray(self._array(LABEL).oindex[slots, order.index(scheme)], dtype=np.int64).reshape(-1)
        keep = labels >= 0
        return slots[keep], labels[keep]

    def column(self, name: str, slots: Sequence[int] | np.ndarray | None = None) -> np.ndarray:
        """A per-sample array at ``slots`` (every slot when None) in its stored dtype; strings as numpy str."""
        array = self._array(name)
        if slots is not None:
            self.check_intact(slots)
        try:
            values = array[:] if slots is None else array.oindex[np.asarray(slots, dtype=np.int64)]
        except DECODE_ERRORS:  # a chunk of the size written but other bytes
            wanted = range(array.shape[0]) if slots is None else np.asarray(slots, dtype=np.int64).tolist()
            broken = sorted(set(read_column(array)[1]) & set(wanted))
            if not broken:
                raise
            raise self._damaged(broken[0], name, "chunk does not decode") from None
        return as_strings(values) if ARRAYS_BY_NAME[name].dtype == "str" else np.asarray(values)

    def group_array(self, name: str) -> np.ndarray:
        """A group-level array (names, edge index) whole."""
        values = self._array(name)[...]
        return as_strings(values) if ARRAYS_BY_NAME[name].dtype == "str" else np.asarray(values)

    def read(self, name: str, slots: Sequence[int] | np.ndarray, empty: Callable = float32_empty) -> np.ndarray:
        """Float32 values of a per-sample array at ``slots`` (any order, repeats allowed), into an array
        made by ``empty(shape)``; one chunk file per sample, read and decoded directly (``rows``).
        A slot whose chunk is missing or undecodable, or whose values are NaN or infinite (a feature
        array), raises DamagedSampleError naming it: a model never sees damaged data."""
        slots = np.asarray(slots, dtype=np.int64)
        self.check_intact(slots)
        try:
            out = read_rows(self._array(name), slots, empty, missing="raise")
        except RowError as exc:
            raise self._damaged(exc.row, name, exc.reason) from None
        if name in FEATURE_ARRAYS:
            bad = ~np.isfinite(out.reshape(len(slots), -1)).all(1)
            if bad.any():
                raise self._damaged(int(slots[np.flatnonzero(bad)[0]]), name, "holds NaN or infinite values")
        return out

    def _damaged(self, slot: int, name: str, reason: str) -> DamagedSampleError:
        sample = str(read_column(self._array(SAMPLE_ID))[0][slot])  # a damaged id reads as ''
        return DamagedSampleError(f"store {self.path}: sample {sample!r}: array {name!r}: {reason}; see stag store "
                                  f"validate {self.path}, and rerun stag-ingest to recompute it")


def open_stores(paths: Sequence[str | Path]) -> list[StoreReader]:
    """One reader per path; a missing store raises FileNotFoundError naming it."""
    if not paths:
        raise ValueError("no store given; pass at least one --store")
    return [StoreReader(path) for path in paths]
