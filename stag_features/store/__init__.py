"""The feature store: the only code that touches Zarr."""
