"""Store spec v1 in machine-checkable form (the prose page is store_spec.md).

Every per-sample array has ``sample`` as its first dimension, chunked one
sample per chunk. Group-level arrays (names, static graph) have no ``sample``
dimension. Strings are variable-length (zarr dtype ``str``).
"""
from __future__ import annotations

from dataclasses import dataclass

SCHEMA_VERSION = 1


@dataclass(frozen=True)
class ArraySpec:
    name: str
    dims: tuple[str, ...]
    dtype: str  # numpy dtype string, or "str" for variable-length strings
    description: str

    @property
    def per_sample(self) -> bool:
        return bool(self.dims) and self.dims[0] == "sample"


def _a(name: str, dims: tuple[str, ...], dtype: str, description: str) -> ArraySpec:
    return ArraySpec(name, dims, dtype, description)


# per-sample arrays -------------------------------------------------------
SAMPLE_ARRAYS: tuple[ArraySpec, ...] = (
    # identity and labels
    _a("sample_id", ("sample",), "str", "subject/clip, unique in the dataset"),
    _a("subject", ("sample",), "str", "subject id as in the sheet"),
    _a("clip", ("sample",), "str", "clip id as in the sheet"),
    _a("emotion", ("sample",), "str", "raw emotion label from the sheet"),
    _a("onset", ("sample",), "int32", "onset frame number (sheet), -1 if none"),
    _a("apex", ("sample",), "int32", "apex frame number (sheet), -1 if none"),
    _a("offset", ("sample",), "int32", "offset frame number (sheet), -1 if none"),
    _a("label", ("sample", "scheme"), "int16", "class index per class scheme, -1 if excluded"),
    _a("au_truth", ("sample", "au"), "int8", "ground-truth AU from the sheet: 1, 0, or -1 unknown"),
    # motion over all frames
    _a("n_time", ("sample",), "int32", "number of valid entries along time"),
    _a("frame_numbers", ("sample", "time"), "int32", "frame number of each analysed frame, -1 padding"),
    _a("motion_curve", ("sample", "time"), "float32", "motion relative to onset, NaN padding"),
    _a("ranked_frames", ("sample", "time"), "int32", "time positions by decreasing motion, -1 padding"),
    _a("head_motion", ("sample", "time"), "float32", "residual head motion (px), NaN padding"),
    _a("apex_estimated", ("sample",), "int32", "time position of the estimated apex"),
    _a("apex_annotated", ("sample",), "int32", "time position of the sheet's apex, -1 if none"),
    # selected frames and flow
    _a("selected_frames", ("sample", "frame"), "int32", "time positions of the K selected frames"),
    _a("flow", ("sample", "frame", "uv", "y", "x"), "float16", "TV-L1 flow onset -> frame (px)"),
    _a("strain", ("sample", "frame", "y", "x"), "float16", "optical strain magnitude"),
    # face
    _a("onset_face", ("sample", "y", "x"), "uint8", "aligned grayscale onset frame"),
    _a("landmarks_onset", ("sample", "landmark", "xy"), "float32", "68 landmarks on the aligned onset"),
    _a("landmarks_apex", ("sample", "landmark", "xy"), "float32", "68 landmarks on the aligned apex"),
    _a("roi_boxes", ("sample", "roi", "bound"), "float32", "x0, y0, x1, y1 per ROI"),
    # ROI, AU, graph
    _a("roi_patches", ("sample", "frame", "roi", "uv", "py", "px"), "float16", "ROI flow patches"),
    _a("roi_stats", ("sample", "frame", "roi", "stat"), "float32", "mean u, mean v, mean magnitude, direction"),
    _a("au_activation", ("sample", "frame", "au"), "float32", "flow-derived AU cue per selected frame"),
    _a("edge_weight", ("sample", "frame", "edge"), "float32", "AU-guided dynamic edge weights"),
    # provenance and commit
    _a("input_hash", ("sample",), "str", "sha256 of the sample's inputs (record + frame bytes)"),
    _a("config_hash", ("sample",), "str", "PipelineConfig hash the sample was computed with"),
    _a("committed", ("sample",), "bool", "written last; readers see only committed samples"),
)

# group-level arrays ----------------------------------------------------------
GROUP_ARRAYS: tuple[ArraySpec, ...] = (
    _a("roi_name", ("roi",), "str", "ROI names in order"),
    _a("au_name", ("au",), "str", "AU names in order, e.g. AU12"),
    _a("scheme_name", ("scheme",), "str", "class scheme names in order"),
    _a("edge_index", ("edge", "end"), "int32", "ROI index pairs of the graph's edges (undirected)"),
)

REQUIRED_ATTRS: tuple[str, ...] = (
    "schema_version",
    "dataset",
    "pipeline_config",
    "config_hash",
    "class_schemes",
    "roi_names",
    "au_names",
    "package_version",
)

ARRAYS_BY_NAME = {spec.name: spec for spec in SAMPLE_ARRAYS + GROUP_ARRAYS}
