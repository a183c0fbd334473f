"""The feature store: the only code that touches Zarr.

- ``reader``: the read API (``open_stores``, ``StoreReader``, ``StoreMetadata``) that the
  trainer, the reports and the figures use; ``rows`` is its fast whole-batch chunk path.
- ``query``: the same stores as lazy xarray / Dask datasets, for data scientists.
- ``writer`` (creation, slots), ``slots`` (one sample's slot, committed last), ``identity``
  (which store a run may use), ``lock`` (the lock file), ``validate`` (the spec's checks),
  ``integrity`` (chunk digests, damage), ``migrate`` (stores of an earlier spec).
"""
from stag_features.store.reader import DamagedSampleError, StoreMetadata, StoreReader, open_stores, visible_slots

__all__ = ["DamagedSampleError", "StoreMetadata", "StoreReader", "open_stores", "visible_slots"]
