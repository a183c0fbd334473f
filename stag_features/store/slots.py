"""One sample's slot in a feature store: its arrays written at once, the commit flag last.

Rules 3 and 4 of the store's writing protocol (``stag_features.store.writer`` creates the store and
allocates the slots):

3. ``write_sample`` writes one slot's chunks only (one sample per chunk): the ``committed``
   flag false first, then every other array, then the digests of the chunk files as written
   (``chunk_digest``, ``stag_features.store.integrity``), then ``committed`` true.
4. ``record_failure`` writes the failure (stage, reason, time) into the slot, uncommitted.

A sample is some thirty arrays, each a chunk file of its own. Written one by one through Zarr's
synchronous API, each costs a round trip to Zarr's I/O thread, and opening each array's metadata
one more: ~35 ms per sample, most of a composite-store import and a tenth of a demo clip's ingest.
A ``SlotWriter`` therefore opens the per-sample arrays together, through Zarr's asynchronous API,
and writes a slot's arrays concurrently in one coroutine, the flag's two writes around them.

A writer opens the arrays under the store's shared lock, so no resize (``allocate_slots``) is in
progress while it reads their metadata. It can write any number of slots afterwards: a resize only
appends slots, which leaves the chunks of the existing ones where they were; a slot appended after
the writer opened makes it open the arrays again.
"""
from __future__ import annotations

import asyncio
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import zarr.api.asynchronous as zarr_async
from zarr.core.sync import sync  # the bridge Zarr's own synchronous API runs its coroutines through

from schemas.sample_features import SampleFeatures
from schemas.store_config import StoreConfig
from schemas.store_spec import CHUNK_DIGEST, FEATURE_ARRAYS, StoreLayout
from stag_features.errors import SampleError
from stag_features.store.integrity import chunk_digests, chunk_file
from stag_features.store.lock import store_lock

# write every chunk, even one equal to the fill value (an all -1 au_truth, say), so
# that a committed sample has all its chunks on disk and validate can check that.
# Set per array: zarr's global config context is not thread-safe.
_WRITE_ALL_CHUNKS = {"write_empty_chunks": True}
# written afresh with every commit: a committed slot carries no failure of an earlier attempt
_FAILURE_FIELDS = ("failure_stage", "failure_reason", "failure_time")


def _labels_row(features: SampleFeatures, layout: StoreLayout) -> np.ndarray:
    return np.array([features.record.labels.get(name, -1) for name in layout.class_schemes], dtype="int16")


def _padded(values: np.ndarray, length: int, fill, dtype: str) -> np.ndarray:
    out = np.full(length, fill, dtype=dtype)
    out[: len(values)] = values
    return out


def sample_arrays(features: SampleFeatures, layout: StoreLayout, flow_dtype: str) -> dict[str, np.ndarray]:
    """Every per-sample array's value for one sample (except hashes, failures, digests and the flag).

    Raises SampleError (stage "store") naming the array, the expected and the actual shape when the
    features do not fit the store's layout, or naming a feature array that holds NaN or Inf (a model
    must never train on them).
    """
    record, sid = features.record, features.sample_id
    n_time = len(features.frame_numbers)
    if n_time > layout.time:
        raise SampleError(sid, "store", f"{n_time} frames analysed, more than store.max_time={layout.time}; "
                          "raise store.max_time in the pipeline config (a new store)")
    optional = lambda v: -1 if v is None else int(v)  # noqa: E731
    values = {
        "subject": np.array(record.subject, dtype=str),
        "clip": np.array(record.clip, dtype=str),
        "emotion": np.array(record.emotion, dtype=str),
        "onset": np.int32(optional(record.onset)),
        "apex": np.int32(optional(record.apex)),
        "offset": np.int32(optional(record.offset)),
        "label": _labels_row(features, layout),
        "au_truth": np.asarray(features.au_truth, dtype="int8"),
        "n_time": np.int32(n_time),
        "frame_numbers": _padded(features.frame_numbers, layout.time, -1, "int32"),
        "motion_curve": _padded(features.motion_curve, layout.time, np.nan, "float32"),
        "ranked_frames": _padded(features.ranked_frames, layout.time, -1, "int32"),
        "head_motion": _padded(features.head_motion, layout.time, np.nan, "float32"),
        "apex_estimated": np.int32(features.apex_estimated),
        "apex_annotated": np.int32(features.apex_annotated),
        "undecodable_frames": np.array(",".join(str(f) for f in features.undecodable_frames), dtype=str),
        "selected_frames": np.asarray(features.selected_frames, dtype="int32"),
        "flow": np.asarray(features.flow).astype(flow_dtype),
        "strain": np.asarray(features.strain).astype(flow_dtype),
        "onset_face": np.asarray(features.onset_face, dtype="uint8"),
        "landmarks_onset": np.asarray(features.landmarks_onset, dtype="float32"),
        "landmarks_apex": np.asarray(features.landmarks_apex, dtype="float32"),
        "roi_boxes": np.asarray(features.roi_boxes, dtype="float32"),
        "roi_patches": np.asarray(features.roi_patches).astype(flow_dtype),
        "roi_stats": np.asarray(features.roi_stats, dtype="float32"),
        "au_activation": np.asarray(features.au_activations, dtype="float32"),
        "edge_weight": np.asarray(features.edge_weights, dtype="float32"),
    }
    values.update(_optional_arrays(features, layout))
    by_name = {spec.name: spec for spec in layout.sample_arrays()}
    for name, value in values.items():
        expected = layout.shape(by_name[name])
        if value.shape != expected:
            raise SampleError(sid, "store", f"array {name!r} has shape {value.shape}, the store expects "
                              f"{expected} (dims {by_name[name].dims[1:]}, layout {layout.dim_sizes()})")
    for name in FEATURE_ARRAYS:
        bad = int(np.size(values[name]) - np.isfinite(values[name].astype(np.float32)).sum())
        if bad:
            raise SampleError(sid, "store", f"array {name!r} holds {bad} NaN or infinite values; nothing was written")
    return values


def _optional_arrays(features: SampleFeatures, layout: StoreLayout) -> dict[str, np.ndarray]:
    """The optional arrays ``layout`` lists, from ``features.extras`` (SampleError if one is missing)."""
    missing = [name for name in layout.extra_arrays if name not in features.extras]
    if missing:
        raise SampleError(features.sample_id, "store", f"the store holds optional arrays {missing} that its "
                          "producer did not compute for this sample; nothing was written")
    return {spec.name: np.asarray(features.extras[spec.name], dtype=spec.dtype)
            for spec in layout.sample_arrays() if spec.name in layout.extra_arrays}


async def _open_arrays(path: Path):
    group = await zarr_async.open_group(store=str(path), mode="r+", zarr_format=3)
    names = [spec.name for spec in StoreLayout.model_validate(group.attrs["layout"]).sample_arrays()]
    opened = await asyncio.gather(*(group.getitem(name) for name in names))
    return group.attrs, {name: array.with_config(_WRITE_ALL_CHUNKS) for name, array in zip(names, opened)}


async def _write_slot(arrays: dict, path: Path, slot: int, sample_id: str, values: dict[str, np.ndarray],
                      commit: bool, digested: tuple[str, ...]) -> None:
    stored = str(await arrays["sample_id"].getitem(slot))
    if stored != sample_id:
        raise ValueError(f"store {path}: slot {slot} belongs to {stored!r}, not {sample_id!r}; allocate slots first")
    await arrays["committed"].setitem(slot, False)
    await _all_landed(arrays[name].setitem(slot, value) for name, value in values.items())
    if commit:
        files = {name: chunk_file(path, arrays[name], slot) for name in digested}
        await arrays[CHUNK_DIGEST].setitem(slot, await asyncio.to_thread(chunk_digests, files, digested))
        await arrays["committed"].setitem(slot, True)


async def _all_landed(writes) -> None:
    """Await every write; raise the first error only once all of them have run to their end, so that
    none is left to land after the caller moves on."""
    outcomes = await asyncio.gather(*writes, return_exceptions=True)
    errors = [outcome for outcome in outcomes if isinstance(outcome, BaseException)]
    if errors:
        raise errors[0]


class SlotWriter:
    """Writes samples and failures into the allocated slots of the store at ``path``."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._open()
        self.layout = StoreLayout.model_validate(self._attrs["layout"])
        self.flow_dtype = StoreConfig.model_validate(self._attrs.get("store_config", {})).flow_dtype
        self.config_hash = str(self._attrs["config_hash"])

    def _open(self) -> None:
        if not (self.path / "zarr.json").exists():
            raise FileNotFoundError(f"no feature store at {self.path} (create it with stag-ingest)")
        with store_lock(self.path, exclusive=False):
            self._attrs, self._arrays = sync(_open_arrays(self.path))

    def _commit(self, slot: int, sample_id: str, values: dict[str, np.ndarray], commit: bool) -> None:
        if slot >= self._arrays["sample_id"].shape[0]:
            self._open()  # the slot was appended after this writer opened the arrays
        sync(_write_slot(self._arrays, self.path, slot, sample_id, values, commit, self.layout.digested_arrays()))

    def write(self, slot: int, features: SampleFeatures, input_hash: str) -> None:
        """Write one sample into its slot: uncommit, arrays, provenance, commit last. A sample that does
        not fit the layout raises SampleError before anything is written."""
        values = sample_arrays(features, self.layout, self.flow_dtype)
        values.update({"input_hash": np.array(input_hash, dtype=str),
                       "config_hash": np.array(self.config_hash, dtype=str),
                       **{name: np.array("", dtype=str) for name in _FAILURE_FIELDS}})
        self._commit(slot, features.sample_id, values, commit=True)

    def record_failure(self, slot: int, sample_id: str, stage: str, reason: str, input_hash: str) -> None:
        """Record a failed attempt in the sample's slot; the sample is left uncommitted."""
        when = datetime.now(timezone.utc).isoformat(timespec="seconds")
        values = {name: np.array(value, dtype=str) for name, value in zip(
            (*_FAILURE_FIELDS, "input_hash", "config_hash"), (stage, reason, when, input_hash, self.config_hash))}
        self._commit(slot, sample_id, values, commit=False)


def write_sample(path: str | Path, slot: int, features: SampleFeatures, input_hash: str) -> None:
    """Write one sample into its slot (``SlotWriter.write``): for one sample; a run of many keeps a writer."""
    SlotWriter(path).write(slot, features, input_hash)


def record_failure(path: str | Path, slot: int, sample_id: str, stage: str, reason: str, input_hash: str) -> None:
    """Record a failed attempt in the sample's slot (``SlotWriter.record_failure``), left uncommitted."""
    SlotWriter(path).record_failure(slot, sample_id, stage, reason, input_hash)
