"""Store spec v1 in machine-checkable form (the prose page is store_spec.md).

Every per-sample array has ``sample`` as its first dimension, chunked one
sample per chunk (the other dimensions whole). Group-level arrays (names, the
static graph) have no ``sample`` dimension. Strings are variable-length (zarr
dtype ``str``). The sizes of the other dimensions are fixed per store by its
``StoreLayout`` (group attribute ``layout``).
"""
from __future__ import annotations

from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, Field, model_validator

SCHEMA_VERSION = 1

# dimensions whose size never changes
FIXED_DIMS: dict[str, int] = {"uv": 2, "landmark": 68, "xy": 2, "bound": 4, "stat": 4, "end": 2}


@dataclass(frozen=True)
class ArraySpec:
    name: str
    dims: tuple[str, ...]
    dtype: str  # numpy dtype string, "str" for variable-length strings, "flow" for StoreConfig.flow_dtype
    description: str

    @property
    def per_sample(self) -> bool:
        return bool(self.dims) and self.dims[0] == "sample"


def _a(name: str, dims: tuple[str, ...], dtype: str, description: str) -> ArraySpec:
    return ArraySpec(name, dims, dtype, description)


# per-sample arrays -------------------------------------------------------
SAMPLE_ARRAYS: tuple[ArraySpec, ...] = (
    # identity and labels
    _a("sample_id", ("sample",), "str", "subject/clip, unique in the dataset; written when the slot is allocated"),
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
    _a("flow", ("sample", "frame", "uv", "y", "x"), "flow", "TV-L1 flow onset -> frame (units: attr flow_units)"),
    _a("strain", ("sample", "frame", "y", "x"), "flow", "optical strain magnitude"),
    # face
    _a("onset_face", ("sample", "y", "x"), "uint8", "aligned grayscale onset frame"),
    _a("landmarks_onset", ("sample", "landmark", "xy"), "float32", "68 landmarks on the aligned onset"),
    _a("landmarks_apex", ("sample", "landmark", "xy"), "float32", "68 landmarks on the aligned apex"),
    _a("roi_boxes", ("sample", "roi", "bound"), "float32", "x0, y0, x1, y1 per ROI"),
    # ROI, AU, graph
    _a("roi_patches", ("sample", "frame", "roi", "uv", "py", "px"), "flow", "ROI flow patches"),
    _a("roi_stats", ("sample", "frame", "roi", "stat"), "float32", "mean u, mean v, mean magnitude, direction"),
    _a("au_activation", ("sample", "frame", "au"), "float32", "flow-derived AU cue per selected frame"),
    _a("edge_weight", ("sample", "frame", "edge"), "float32", "AU-guided dynamic edge weights"),
    # provenance, failures and commit
    _a("input_hash", ("sample",), "str", "sha256 of the sample's inputs (record + frame bytes)"),
    _a("config_hash", ("sample",), "str", "PipelineConfig hash the sample was computed (or failed) with"),
    _a("failure_stage", ("sample",), "str", "stage that failed, '' if the last attempt succeeded"),
    _a("failure_reason", ("sample",), "str", "why it failed, '' if the last attempt succeeded"),
    _a("failure_time", ("sample",), "str", "UTC ISO time of the failure, '' if none"),
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
    "layout",
    "flow_units",
    "producer",
)

ARRAYS_BY_NAME = {spec.name: spec for spec in SAMPLE_ARRAYS + GROUP_ARRAYS}

# sample ids of slots that record an annotation row that could not become a
# sample start with this prefix; such slots are never committed
BAD_ROW_PREFIX = "sheet:"


class StoreLayout(BaseModel):
    """Sizes of every dimension but ``sample``, and the names along them."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    frames: int = Field(ge=1, description="K selected frames")
    height: int = Field(ge=1, description="y size of flow / faces")
    width: int = Field(ge=1, description="x size of flow / faces")
    time: int = Field(ge=2, description="padded length of per-clip time series")
    patch: int = Field(ge=1, description="ROI patch side")
    roi_names: tuple[str, ...]
    au_names: tuple[str, ...]
    edges: tuple[tuple[int, int], ...] = Field(description="ROI index pairs, undirected")
    class_schemes: dict[str, tuple[str, ...]] = Field(description="scheme name -> class names, in index order")

    @model_validator(mode="after")
    def _edges_index_rois(self) -> "StoreLayout":
        n = len(self.roi_names)
        bad = [e for e in self.edges if not (0 <= e[0] < n and 0 <= e[1] < n)]
        if bad:
            raise ValueError(f"edges {bad[:3]} index ROIs outside 0..{n - 1}")
        return self

    def dim_sizes(self) -> dict[str, int]:
        """Size of every non-sample dimension."""
        return {
            **FIXED_DIMS,
            "scheme": len(self.class_schemes),
            "au": len(self.au_names),
            "time": self.time,
            "frame": self.frames,
            "y": self.height,
            "x": self.width,
            "roi": len(self.roi_names),
            "py": self.patch,
            "px": self.patch,
            "edge": len(self.edges),
        }

    def shape(self, spec: ArraySpec) -> tuple[int, ...]:
        """Shape of one sample's entry (per-sample arrays) or of the whole array (group arrays)."""
        sizes = self.dim_sizes()
        dims = spec.dims[1:] if spec.per_sample else spec.dims
        return tuple(sizes[d] for d in dims)
