"""Store spec v2 in machine-checkable form (the prose page is docs/store.md).

Every per-sample array has ``sample`` as its first dimension, chunked one
sample per chunk (the other dimensions whole). Group-level arrays (names, the
static graph) have no ``sample`` dimension. Strings are variable-length (zarr
dtype ``str``). The sizes of the other dimensions are fixed per store by its
``StoreLayout`` (group attribute ``layout``).
"""
from __future__ import annotations

from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, Field, model_validator

SCHEMA_VERSION = 2  # v1 stores (no chunk digests, no undecodable_frames) are migrated by a writer
# how the samples' input_hash is computed (group attribute ``input_identity``): from what the sample
# means and the bytes it uses, not from paths or sheet rows. Stores without the attribute hold the
# earlier, path-dependent hashes, which the next ingest replaces (stag_features.ingest.input_hash).
INPUT_IDENTITY = "content-v1"

# the ROI statistics along ``stat``, in order: written by stag_features.extract.roi_features,
# read by name (``ROI_STAT_NAMES.index("dominant_direction")``), never by a hard-coded position
ROI_STAT_NAMES: tuple[str, ...] = ("mean_u", "mean_v", "mean_magnitude", "dominant_direction")

# dimensions whose size never changes
FIXED_DIMS: dict[str, int] = {"uv": 2, "landmark": 68, "xy": 2, "bound": 4, "stat": len(ROI_STAT_NAMES), "end": 2}

# array names used by the writer and the readers alike
SAMPLE_ID, SUBJECT, CLIP, EMOTION = "sample_id", "subject", "clip", "emotion"
ONSET, APEX, OFFSET, LABEL, AU_TRUTH = "onset", "apex", "offset", "label", "au_truth"
N_TIME, FRAME_NUMBERS, MOTION_CURVE, RANKED_FRAMES = "n_time", "frame_numbers", "motion_curve", "ranked_frames"
HEAD_MOTION, APEX_ESTIMATED, APEX_ANNOTATED = "head_motion", "apex_estimated", "apex_annotated"
SELECTED_FRAMES, FLOW, STRAIN = "selected_frames", "flow", "strain"
ONSET_FACE, LANDMARKS_ONSET, LANDMARKS_APEX, ROI_BOXES = "onset_face", "landmarks_onset", "landmarks_apex", "roi_boxes"
ROI_PATCHES, ROI_STATS, AU_ACTIVATION, EDGE_WEIGHT = "roi_patches", "roi_stats", "au_activation", "edge_weight"
INPUT_HASH, CONFIG_HASH, COMMITTED = "input_hash", "config_hash", "committed"
UNDECODABLE_FRAMES, CHUNK_DIGEST, DIGESTED_NAME = "undecodable_frames", "chunk_digest", "digested_name"
FAILURE_STAGE, FAILURE_REASON, FAILURE_TIME = "failure_stage", "failure_reason", "failure_time"
SOURCE_DATASET, APEX_FACE = "source_dataset", "apex_face"
# appearance images (stag_features.extract.appearance; PipelineConfig.appearance), float32 (C, S, S) each
ONSET_IMAGE, APEX_IMAGE, DIFFERENCE_IMAGE = "onset_image", "apex_image", "difference_image"
DYNAMIC_IMAGE, MESTI_IMAGE = "dynamic_image", "mesti_image"
ROI_NAME, AU_NAME, SCHEME_NAME, EDGE_INDEX = "roi_name", "au_name", "scheme_name", "edge_index"
# what a model reads of every sample (float arrays along frame)
FEATURE_ARRAYS: tuple[str, ...] = (FLOW, STRAIN, ROI_PATCHES, ROI_STATS, AU_ACTIVATION, EDGE_WEIGHT)


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
    _a(SAMPLE_ID, ("sample",), "str", "subject/clip, unique in the dataset; written when the slot is allocated"),
    _a(SUBJECT, ("sample",), "str", "subject id as in the sheet"),
    _a(CLIP, ("sample",), "str", "clip id as in the sheet"),
    _a(EMOTION, ("sample",), "str", "raw emotion label from the sheet"),
    _a(ONSET, ("sample",), "int32", "onset frame number (sheet), -1 if none"),
    _a(APEX, ("sample",), "int32", "apex frame number (sheet), -1 if none"),
    _a(OFFSET, ("sample",), "int32", "offset frame number (sheet), -1 if none"),
    _a(LABEL, ("sample", "scheme"), "int16", "class index per class scheme, -1 if excluded"),
    _a(AU_TRUTH, ("sample", "au"), "int8", "ground-truth AU from the sheet: 1, 0, or -1 unknown"),
    # motion over all frames
    _a(N_TIME, ("sample",), "int32", "number of valid entries along time"),
    _a(FRAME_NUMBERS, ("sample", "time"), "int32", "frame number of each analysed frame, -1 padding"),
    _a(MOTION_CURVE, ("sample", "time"), "float32", "motion relative to onset, NaN padding"),
    _a(RANKED_FRAMES, ("sample", "time"), "int32", "time positions by decreasing motion, -1 padding"),
    _a(HEAD_MOTION, ("sample", "time"), "float32", "residual head motion (px), NaN padding"),
    _a(APEX_ESTIMATED, ("sample",), "int32", "time position of the estimated apex"),
    _a(APEX_ANNOTATED, ("sample",), "int32", "time position of the sheet's apex, -1 if none"),
    _a(UNDECODABLE_FRAMES, ("sample",), "str", "frame numbers skipped because they could not be decoded "
       "(comma-separated; only where the config allows skipping), '' if none"),
    # selected frames and flow
    _a(SELECTED_FRAMES, ("sample", "frame"), "int32", "time positions of the K selected frames"),
    _a(FLOW, ("sample", "frame", "uv", "y", "x"), "flow", "TV-L1 flow onset -> frame (units: attr flow_units)"),
    _a(STRAIN, ("sample", "frame", "y", "x"), "flow", "optical strain magnitude"),
    # face
    _a(ONSET_FACE, ("sample", "y", "x"), "uint8", "aligned grayscale onset frame"),
    _a(LANDMARKS_ONSET, ("sample", "landmark", "xy"), "float32", "68 landmarks on the aligned onset"),
    _a(LANDMARKS_APEX, ("sample", "landmark", "xy"), "float32", "68 landmarks on the aligned apex"),
    _a(ROI_BOXES, ("sample", "roi", "bound"), "float32", "x0, y0, x1, y1 per ROI"),
    # ROI, AU, graph
    _a(ROI_PATCHES, ("sample", "frame", "roi", "uv", "py", "px"), "flow", "ROI flow patches"),
    _a(ROI_STATS, ("sample", "frame", "roi", "stat"), "float32", "ROI_STAT_NAMES: mean u, mean v, mean magnitude, dominant direction (rad)"),
    _a(AU_ACTIVATION, ("sample", "frame", "au"), "float32", "flow-derived AU cue per selected frame"),
    _a(EDGE_WEIGHT, ("sample", "frame", "edge"), "float32", "AU-guided dynamic edge weights"),
    # provenance, failures and commit
    _a(INPUT_HASH, ("sample",), "str", "sha256 of the sample's inputs (record + frame bytes)"),
    _a(CONFIG_HASH, ("sample",), "str", "PipelineConfig hash the sample was computed (or failed) with"),
    _a(FAILURE_STAGE, ("sample",), "str", "stage that failed, '' if the last attempt succeeded"),
    _a(FAILURE_REASON, ("sample",), "str", "why it failed, '' if the last attempt succeeded"),
    _a(FAILURE_TIME, ("sample",), "str", "UTC ISO time of the failure, '' if none"),
    _a(CHUNK_DIGEST, ("sample", "digested"), "str", "per digested array (DIGESTED_ARRAYS): '<bytes>:<sha256>' of "
       "the chunk file as written, recorded before the commit flag"),
    _a(COMMITTED, ("sample",), "bool", "written last; readers see only committed samples"),
)

# per-sample arrays whose chunk files a committed sample's digests cover: all but provenance, failures,
# the digests and the flag (which later steps may rewrite in place)
UNDIGESTED: frozenset[str] = frozenset({INPUT_HASH, CONFIG_HASH, FAILURE_STAGE, FAILURE_REASON, FAILURE_TIME,
                                        CHUNK_DIGEST, COMMITTED})
DIGESTED_ARRAYS: tuple[str, ...] = tuple(spec.name for spec in SAMPLE_ARRAYS if spec.name not in UNDIGESTED)

# optional per-sample arrays ----------------------------------------------------
# present in a store only when its producer writes them: the store's layout lists them
# (``StoreLayout.extra_arrays``), and they are digested like the arrays above. A store without one
# keeps working for every reader that does not need it.
OPTIONAL_ARRAYS: tuple[ArraySpec, ...] = (
    _a(SOURCE_DATASET, ("sample",), "str", "dataset the clip comes from, in a store that mixes datasets "
       "(the MEGC 2019 composite: casme2, samm, smic); without the array, the store's dataset"),
    _a(APEX_FACE, ("sample", "fy", "fx"), "uint8", "aligned grayscale apex face, layout.face_size square"),
    # appearance (PipelineConfig.appearance.enabled): intensities in [0, 1] (uint8 / 255) on the aligned face,
    # ``ac`` channels (1 grey, 3 BGR) at layout.appearance_size square
    _a(ONSET_IMAGE, ("sample", "ac", "ay", "ax"), "float32", "aligned onset face (TSFmicro's spatial input)"),
    _a(APEX_IMAGE, ("sample", "ac", "ay", "ax"), "float32", "aligned apex face (an input MEGANet compares)"),
    _a(DIFFERENCE_IMAGE, ("sample", "ac", "ay", "ax"), "float32", "apex - onset (TSFmicro eq. 1, its temporal input)"),
    _a(DYNAMIC_IMAGE, ("sample", "ac", "ay", "ax"), "float32", "dynamic image of the onset..offset frames: "
       "approximate rank pooling (Bilen et al. 2016), weights normalised to +-1"),
    _a(MESTI_IMAGE, ("sample", "ac", "ay", "ax"), "float32", "MESTI image: rank pooling with an apex-centred "
       "target score (OUR definition: the paper publishes no weights; AppearanceConfig.mesti_profile / "
       "mesti_weights choose it, stag_features.extract.appearance gives the formula)"),
)
APPEARANCE_ARRAYS: tuple[str, ...] = (ONSET_IMAGE, APEX_IMAGE, DIFFERENCE_IMAGE, DYNAMIC_IMAGE, MESTI_IMAGE)
OPTIONAL_BY_NAME = {spec.name: spec for spec in OPTIONAL_ARRAYS}

# group-level arrays ----------------------------------------------------------
GROUP_ARRAYS: tuple[ArraySpec, ...] = (
    _a(ROI_NAME, ("roi",), "str", "ROI names in order"),
    _a(AU_NAME, ("au",), "str", "AU names in order, e.g. AU12"),
    _a(SCHEME_NAME, ("scheme",), "str", "class scheme names in order"),
    _a(EDGE_INDEX, ("edge", "end"), "int32", "ROI index pairs of the graph's edges (undirected)"),
    _a(DIGESTED_NAME, ("digested",), "str", "names of the digested per-sample arrays, in chunk_digest's order"),
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

ARRAYS_BY_NAME = {spec.name: spec for spec in SAMPLE_ARRAYS + OPTIONAL_ARRAYS + GROUP_ARRAYS}

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
    extra_arrays: tuple[str, ...] = Field((), description="optional per-sample arrays (OPTIONAL_ARRAYS) it holds")
    face_size: int = Field(0, ge=0, description="side of the stored apex face (fy, fx); 0 without one")
    appearance_size: int = Field(0, ge=0, description="side of the appearance images (ay, ax); 0 without them")
    appearance_channels: int = Field(0, ge=0, description="channels of the appearance images (ac): 1 grey, 3 BGR")

    @model_validator(mode="after")
    def _edges_index_rois(self) -> "StoreLayout":
        n = len(self.roi_names)
        bad = [e for e in self.edges if not (0 <= e[0] < n and 0 <= e[1] < n)]
        if bad:
            raise ValueError(f"edges {bad[:3]} index ROIs outside 0..{n - 1}")
        unknown = [name for name in self.extra_arrays if name not in OPTIONAL_BY_NAME]
        if unknown:
            raise ValueError(f"extra_arrays {unknown} are not optional arrays of the spec ({list(OPTIONAL_BY_NAME)})")
        if APEX_FACE in self.extra_arrays and self.face_size < 1:
            raise ValueError(f"extra array {APEX_FACE!r} needs face_size >= 1")
        appearance = [name for name in self.extra_arrays if name in APPEARANCE_ARRAYS]
        if appearance and (self.appearance_size < 1 or self.appearance_channels < 1):
            raise ValueError(f"extra arrays {appearance} need appearance_size >= 1 and appearance_channels >= 1")
        return self

    def sample_arrays(self) -> tuple[ArraySpec, ...]:
        """Every per-sample array of a store with this layout: the spec's, then its optional ones."""
        return SAMPLE_ARRAYS + tuple(spec for spec in OPTIONAL_ARRAYS if spec.name in self.extra_arrays)

    def digested_arrays(self) -> tuple[str, ...]:
        """The per-sample arrays whose chunk digests a committed sample records, in ``chunk_digest``'s order."""
        return DIGESTED_ARRAYS + tuple(spec.name for spec in OPTIONAL_ARRAYS if spec.name in self.extra_arrays)

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
            "digested": len(self.digested_arrays()),
            "fy": self.face_size,
            "fx": self.face_size,
            "ac": self.appearance_channels,
            "ay": self.appearance_size,
            "ax": self.appearance_size,
        }

    def shape(self, spec: ArraySpec) -> tuple[int, ...]:
        """Shape of one sample's entry (per-sample arrays) or of the whole array (group arrays)."""
        sizes = self.dim_sizes()
        dims = spec.dims[1:] if spec.per_sample else spec.dims
        return tuple(sizes[d] for d in dims)
