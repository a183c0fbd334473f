"""Exports: a store's features written in the formats other code reads.

- ``flow_images``: one MEGC 2019 flow image per sample and its index CSV
  (schemas/megc2019_image.py), so HTNet, STSTNet and their descendants run on stores stag built.

Reads stores only through ``stag_features.store``.
"""
from stag_features.export.flow_images import ExportError, ExportSummary, export_flow_images

__all__ = ["ExportError", "ExportSummary", "export_flow_images"]
