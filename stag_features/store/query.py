"""Read a feature store: a lazy, Dask-backed xarray view of its committed samples.

    >>> ds = open_store("stores/demo.zarr")
    >>> ds.au_activation.max("frame").groupby("emotion").mean().compute()   # mean AU activation per emotion
    >>> ds.motion_curve.where(ds.subject == "s01", drop=True)               # motion curves of one subject

Only committed samples are visible: slots being written, failed samples and
rows that never became samples are filtered out when the store is opened.
Array data is read lazily, chunk by chunk (one sample per chunk), when it is
computed.
"""
from __future__ import annotations

from pathlib import Path

import dask.array as da
import numpy as np
import xarray as xr
import zarr

from schemas.store_spec import COMMITTED, FAILURE_STAGE, GROUP_ARRAYS, OPTIONAL_ARRAYS, SAMPLE_ARRAYS, SAMPLE_ID
from stag_features.store.integrity import damage, describe
from stag_features.store.lock import store_lock
from stag_features.store.reader import DamagedSampleError, StoreReader, as_strings, missing_store, visible_slots
from stag_features.store.rows import read_column

# group arrays that become index coordinates of their dimension
_NAME_COORDS = {"roi_name": "roi", "au_name": "au", "scheme_name": "scheme", "digested_name": "digested"}
# per-sample string arrays that become (non-index) coordinates along sample
_SAMPLE_COORDS = ("subject", "clip", "emotion", "input_hash", "config_hash", "undecodable_frames")
# empty for every committed sample by construction (they describe failed attempts)
_FAILURE_VARS = ("failure_stage", "failure_reason", "failure_time", "chunk_digest")


def _open_raw(path: Path) -> xr.Dataset:
    if not (path / "zarr.json").exists():
        raise missing_store(path)
    with store_lock(path, exclusive=False):
        return xr.open_zarr(str(path), consolidated=False, zarr_format=3)


def open_store(path: str | Path, include_uncommitted: bool = False) -> xr.Dataset:
    """The store at ``path`` as an xarray.Dataset backed by Dask arrays.

    Coordinates: ``sample`` (sample ids), ``subject``, ``clip``, ``emotion``,
    ``input_hash`` and ``config_hash`` along sample (numpy strings, so
    ``ds.where(ds.subject == "s01", drop=True)`` works), ``roi``, ``au`` and
    ``scheme`` names. Failure fields appear only with ``include_uncommitted``. Group attributes
    (dataset, pipeline config, class schemes, flow units...) are in ``attrs``.
    ``include_uncommitted`` keeps every allocated slot (for diagnostics only).

    Damage is refused, naming the sample: opening raises DamagedSampleError when a committed
    sample's chunk file is missing or of another size than written, or when a coordinate's chunk
    does not decode; computing an array raises it for a chunk that does not decode, or for NaN or
    infinite features (each sample chunk is read by ``StoreReader.read``). ``stag store validate
    --deep`` says more; a rerun of stag-ingest repairs it.
    """
    path = Path(path)
    ds = _open_raw(path)
    if include_uncommitted:
        return _with_coordinates(ds, _coordinate_columns(path, ds)[0], hidden=())
    keep = visible_slots(ds[COMMITTED].values, ds[FAILURE_STAGE].values)
    columns, broken = _coordinate_columns(path, ds)
    found = describe(path, damage(path))
    ids = columns["sample_id"]
    found.update({str(ids[slot]) or f"slot {slot}": f"{name}: chunk does not decode"
                  for name, slots in broken.items() for slot in sorted(set(slots) & set(keep.tolist()))})
    if found:
        shown = "; ".join(f"{sid} ({reason})" for sid, reason in list(found.items())[:3])
        raise DamagedSampleError(f"store {path}: {len(found)} committed sample(s) damaged: {shown}; see stag store "
                                 f"validate {path}, and rerun stag-ingest to recompute them")
    ds = _read_through_reader(ds.isel(sample=keep), path, keep)
    return _with_coordinates(ds, {name: values[keep] for name, values in columns.items()}, hidden=_FAILURE_VARS)


def _coordinate_columns(path: Path, ds: xr.Dataset) -> tuple[dict[str, np.ndarray], dict[str, list[int]]]:
    """({name: strings per slot}, {name: slots whose chunk does not decode}) of the sample id and the
    string coordinates along sample; a chunk that does not decode reads as ''."""
    with store_lock(path, exclusive=False):
        group = zarr.open_group(str(path), mode="r")
        read = {name: read_column(group[name]) for name in (SAMPLE_ID, *_SAMPLE_COORDS) if name in ds.variables}
    return ({name: as_strings(values) for name, (values, _) in read.items()},
            {name: broken for name, (_, broken) in read.items() if broken})


def _read_through_reader(ds: xr.Dataset, path: Path, slots: np.ndarray) -> xr.Dataset:
    """``ds`` with each numeric per-sample array replaced by Dask blocks of one sample each, read by
    ``StoreReader.read`` (which names a damaged sample) in the stored dtype."""
    reader = StoreReader(path)
    blocks = da.from_array(np.asarray(slots, dtype=np.int64), chunks=1)
    replaced = {}
    for name, var in ds.data_vars.items():
        if var.dims[:1] != ("sample",) or var.dtype.kind not in "biuf":
            continue
        data = blocks.map_blocks(_sample_rows, reader, name, var.dtype, dtype=var.dtype,
                                 chunks=(blocks.chunks[0], *((n,) for n in var.shape[1:])),
                                 new_axis=list(range(1, var.ndim)) or None)
        replaced[name] = xr.Variable(var.dims, data, var.attrs)
    return ds.assign(replaced)


def _sample_rows(slots: np.ndarray, reader: StoreReader, name: str, dtype: np.dtype) -> np.ndarray:
    return reader.read(name, slots, empty=lambda shape: np.empty(shape, dtype))


def _with_coordinates(ds: xr.Dataset, columns: dict[str, np.ndarray], hidden: tuple[str, ...]) -> xr.Dataset:
    """Name arrays as index coordinates, the string columns as coordinates along sample."""
    present = {var: dim for var, dim in _NAME_COORDS.items() if var in ds.variables}  # v1 stores lack some
    names = {dim: as_strings(ds[var].values) for var, dim in present.items()}
    ds = ds.drop_vars(list(present))
    ds = ds.assign_coords({dim: values for dim, values in names.items()})
    along_sample = {name: ("sample", values) for name, values in columns.items() if name != SAMPLE_ID}
    ds = ds.drop_vars([SAMPLE_ID, *along_sample, *(v for v in hidden if v in ds.variables)])
    return ds.assign_coords(sample=columns[SAMPLE_ID], **along_sample)


def read_sample(path: str | Path, sample_id: str) -> dict[str, np.ndarray]:
    """Every per-sample array of one committed sample, as numpy (padding kept).

    Raises KeyError naming the store and the sample if it is not committed.
    """
    ds = open_store(path)
    if sample_id not in set(ds["sample"].values):
        raise KeyError(f"store {path} holds no committed sample {sample_id!r} "
                       f"({ds.sizes['sample']} committed; see stag store info {path})")
    one = ds.sel(sample=sample_id)
    out = {}
    for spec in SAMPLE_ARRAYS + OPTIONAL_ARRAYS:
        if spec.name == "sample_id" or spec.name not in one.variables:
            continue  # the id is the key; failure fields are empty for committed samples
        out[spec.name] = np.asarray(one[spec.name].values)
    return out


def group_arrays(path: str | Path) -> dict[str, np.ndarray]:
    """The store's group-level arrays (ROI, AU and scheme names, edge index)."""
    ds = _open_raw(Path(path))
    return {spec.name: np.asarray(ds[spec.name].values) for spec in GROUP_ARRAYS}
