"""Contracts between the stages of stag: catalog, sample records, pipeline
configuration, per-sample feature results and the store layout."""
