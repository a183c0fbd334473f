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

import numpy as np
import xarray as xr

from schemas.store_spec import COMMITTED, FAILURE_STAGE, GROUP_ARRAYS, SAMPLE_ARRAYS
from stag_features.store.integrity import damage, describe
from stag_features.store.lock import store_lock
from stag_features.store.reader import DamagedSampleError, as_strings, missing_store, visible_slots

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
    ``include_uncommitted`` keeps every allocated slot (for diagnostics only). A store holding a
    damaged committed sample (a chunk file missing or of another size than written) raises
    DamagedSampleError naming it: ``stag store validate`` says more, a rerun of stag-ingest repairs it.
    """
    path = Path(path)
    ds = _open_raw(path)
    if not include_uncommitted and (found := describe(path, damage(path))):
        shown = "; ".join(f"{sid} ({reason})" for sid, reason in list(found.items())[:3])
        raise DamagedSampleError(f"store {path}: {len(found)} committed sample(s) damaged: {shown}; see stag store "
                                 f"validate {path}, and rerun stag-ingest to recompute them")
    if not include_uncommitted:
        keep = visible_slots(ds[COMMITTED].values, ds[FAILURE_STAGE].values)
        ds = ds.isel(sample=keep)
    present = {var: dim for var, dim in _NAME_COORDS.items() if var in ds.variables}  # v1 stores lack some
    names = {dim: as_strings(ds[var].values) for var, dim in present.items()}
    ds = ds.drop_vars(list(present))
    ds = ds.assign_coords({dim: values for dim, values in names.items()})
    along_sample = {name: ("sample", as_strings(ds[name].values)) for name in _SAMPLE_COORDS if name in ds.variables}
    sample_ids = as_strings(ds["sample_id"].values)
    hidden = [] if include_uncommitted else [v for v in _FAILURE_VARS if v in ds.variables]
    ds = ds.drop_vars(["sample_id", *along_sample, *hidden])
    return ds.assign_coords(sample=sample_ids, **along_sample)


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
    for spec in SAMPLE_ARRAYS:
        if spec.name == "sample_id" or spec.name not in one.variables:
            continue  # the id is the key; failure fields are empty for committed samples
        out[spec.name] = np.asarray(one[spec.name].values)
    return out


def group_arrays(path: str | Path) -> dict[str, np.ndarray]:
    """The store's group-level arrays (ROI, AU and scheme names, edge index)."""
    ds = _open_raw(Path(path))
    return {spec.name: np.asarray(ds[spec.name].values) for spec in GROUP_ARRAYS}
