"""Configuration of the motion stage: motion curve and frame ranking, frame
selection, TV-L1 flow, ROI features, AU activations and the ROI graph.

Owned by the motion pipeline (stag_features.extract.motion / selection / flow /
roi_features / aus / graph). Every parameter has its default here, with the
reason for it; code paths read them from here and hard-code none.
"""
from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class MotionConfig(_Frozen):
    """Cheap flow for the motion curve over every frame (onset -> frame t).

    The curve only ranks frames, so a fast flow at reduced size is enough: DIS
    (medium preset) on a 112 px face costs about 1 ms per frame (all 72 frames
    of single_face.mp4: 0.08 s), against 0.5-1.5 s per TV-L1 pair at 224 px.
    """

    method: Literal["dis", "farneback"] = "dis"
    size: int = Field(112, ge=32, le=1024, description="side (px) the aligned crops are resized to for the cheap flow")
    dis_preset: Literal["ultrafast", "fast", "medium"] = Field(
        "medium", description="OpenCV DIS preset; medium resolves sub-pixel motion better than the faster ones"
    )
    farneback_pyr_scale: float = Field(0.5, gt=0, lt=1, description="OpenCV's documented classic value")
    farneback_levels: int = Field(3, ge=1, le=8)
    farneback_winsize: int = Field(15, ge=3, le=63, description="averaging window; 15 is OpenCV's example value")
    farneback_iterations: int = Field(3, ge=1, le=20)
    farneback_poly_n: int = Field(5, ge=5, le=7)
    farneback_poly_sigma: float = Field(1.2, gt=0, description="OpenCV recommends 1.1-1.2 for poly_n=5")
    face_margin: float = Field(
        0.05,
        ge=0,
        le=0.5,
        description="fraction of the landmark hull's size added around it: the face mask in which motion is averaged",
    )
    remove_head_translation: bool = Field(
        True,
        description="subtract the median flow vector over the face mask before taking magnitudes: the clip is "
        "aligned with one transform, so residual head translation would otherwise dominate the curve",
    )
    statistic: Literal["mean", "p90"] = Field(
        "mean",
        description="how per-pixel magnitudes in the face mask become one number: mean, or 90th percentile "
        "(robust to expressions that move a small area)",
    )
    smooth_frames: int = Field(
        3, ge=1, le=15, description="moving-average window (frames) over the curve before the apex is picked; 1 = none"
    )


class SelectionConfig(_Frozen):
    """Choice of K discriminative frames from the magnitude ranking."""

    k: int = Field(8, ge=1, le=64, description="number of frames handed to TV-L1 and the model")
    min_gap: int = Field(
        2,
        ge=0,
        le=100,
        description="minimum distance (frames) between two selected frames, so the K frames are not all "
        "neighbours of the apex; relaxed step by step when the clip is too short to honour it",
    )
    exclude_onset: bool = Field(
        True, description="never select the onset itself (its flow from onset is zero by definition)"
    )


class TVL1Config(_Frozen):
    """Dual TV-L1 parameters (defaults are OpenCV's, which match the
    IPOL reference implementation's except for its zoom 0.5: OpenCV's scale
    step is 0.8), the flow the solver starts from, and which implementation
    runs them: OpenCV's (``backend: opencv``) or the batched torch one of
    ``stag_features.extract.tvl1_torch`` (``backend: torch``, on ``device``),
    the same algorithm (their agreement is measured in docs/pipeline.md).

    ``fast()`` is the fast preset: epsilon 0.05 stops the inner iterations
    earlier (its speed and accuracy are measured in docs/pipeline.md).
    """

    backend: Literal["opencv", "torch"] = Field(
        "opencv",
        description="which implementation computes TV-L1: OpenCV's (cv2.optflow, one pair at a time) or the torch "
        "one (every pair of a clip in one batched call, on the CPU or a CUDA GPU); part of the config hash",
    )

    tau: float = Field(0.25, gt=0, le=0.25, description="time step of the numerical scheme (stable for <= 0.25)")
    lambda_: float = Field(0.15, alias="lambda", gt=0, description="weight of the data term vs smoothness")
    theta: float = Field(0.3, gt=0, description="coupling between the two variables of the dual scheme")
    scales: int = Field(5, ge=1, le=20, description="pyramid levels")
    warps: int = Field(5, ge=1, le=50, description="warpings per scale")
    epsilon: float = Field(0.01, gt=0, description="stopping threshold of the inner iterations")
    inner_iterations: int = Field(30, ge=1, le=1000, description="OpenCV default")
    outer_iterations: int = Field(10, ge=1, le=1000, description="OpenCV default")
    scale_step: float = Field(0.8, gt=0, lt=1, description="pyramid zoom factor; OpenCV default 0.8, IPOL uses 0.5")
    gamma: float = Field(0.0, ge=0, description="illumination-variation term weight; 0 = classic TV-L1")
    median_filtering: int = Field(5, ge=1, le=7, description="median filter size applied to the flow between warps")
    initial_flow: Literal["none", "dis"] = Field(
        "dis",
        description="start TV-L1 from a DIS flow (OpenCV useInitialFlow) instead of zero, so that large motion "
        "(a smile's mouth corners) is followed rather than smoothed away; 'none' is OpenCV's plain behaviour",
    )
    initial_dis_preset: Literal["ultrafast", "fast", "medium"] = Field(
        "medium", description="DIS preset of the initial flow"
    )
    opencv_threads: int = Field(
        1,
        ge=0,
        le=64,
        description="cv2.setNumThreads per process: TV-L1 gains little from threads, parallelism comes from processes "
        "(execution only: not in the config hash)",
    )
    device: Literal["auto", "cpu", "cuda"] = Field(
        "auto",
        description="where the torch backend runs: auto = a CUDA GPU when torch sees one, else the CPU "
        "(execution only: not in the config hash)",
    )
    torch_threads: int = Field(
        1,
        ge=0,
        le=64,
        description="torch CPU threads while the torch backend runs on the CPU (restored after each call; 0 = torch's "
        "own setting): parallelism comes from processes, as for OpenCV (execution only: not in the config hash)",
    )

    @classmethod
    def fast(cls) -> "TVL1Config":
        """Fast preset: epsilon 0.05 (see the class docstring)."""
        return cls(epsilon=0.05)

    @classmethod
    def ipol_like(cls, scales: int) -> "TVL1Config":
        """The IPOL program's set-up: zoom 0.5, the given number of scales, started from zero flow."""
        return cls(scale_step=0.5, scales=scales, initial_flow="none")


class RoiFeatureConfig(_Frozen):
    """Per-ROI flow patch and statistics."""

    patch_size: int = Field(16, ge=4, le=64, description="ROI flow patch resampled to P x P (area averaging)")
    direction_bins: int = Field(
        16, ge=4, le=360, description="bins of the magnitude-weighted direction histogram (16 = 22.5 degrees)"
    )
    direction_min_magnitude: float = Field(
        0.0,
        ge=0,
        description="pixels slower than this (px) do not vote for the dominant direction; 0 = all vote",
    )


class AUDirection(_Frozen):
    """Expected image-plane motion of one AU in one ROI.

    ``mode`` "vector": unit vector (dx, dy) in image coordinates (y down); for
    ROIs on the subject's left half of the image the x component is mirrored
    when ``mirror_x`` is set (outward on each side).
    ``mode`` "toward_midline": motion toward the face's vertical midline (AU4
    brows together); "away_midline": away from it. ``dy`` still adds a
    vertical component in those modes.
    """

    roi: str
    mode: Literal["vector", "toward_midline", "away_midline"] = "vector"
    dx: float = 0.0
    dy: float = 0.0
    mirror_x: bool = False


def _d(roi: str, dx: float = 0.0, dy: float = 0.0, mode: str = "vector", mirror_x: bool = False) -> AUDirection:
    return AUDirection(roi=roi, dx=dx, dy=dy, mode=mode, mirror_x=mirror_x)


# FACS (Ekman, Friesen & Hager 2002) appearance changes, as image-plane
# directions (x right, y down). Names refer to the default ROI set of
# schemas.face_config; an AU whose ROIs are absent from the ROI config is
# skipped with activation 0 and named in the sample's warnings.
DEFAULT_AU_DIRECTIONS: dict[int, tuple[AUDirection, ...]] = {
    1: (_d("inner_brow_left", dy=-1), _d("inner_brow_right", dy=-1)),  # inner brow raiser
    2: (_d("outer_brow_left", dy=-1), _d("outer_brow_right", dy=-1)),  # outer brow raiser
    4: (  # brow lowerer: inner brows down and together
        _d("inner_brow_left", mode="toward_midline", dy=1),
        _d("inner_brow_right", mode="toward_midline", dy=1),
        _d("glabella", dy=1),
    ),
    5: (_d("eye_left", dy=-1), _d("eye_right", dy=-1)),  # upper lid raiser
    6: (_d("cheek_left", dy=-1), _d("cheek_right", dy=-1)),  # cheek raiser
    7: (_d("eye_left", dy=-1), _d("eye_right", dy=-1)),  # lid tightener: lower lid pushed up (same cue as AU5 here)
    9: (_d("nose", dy=-1),),  # nose wrinkler: nose wings and skin pulled up
    10: (_d("upper_lip", dy=-1),),  # upper lip raiser
    12: (  # lip corner puller: corners outward and up
        _d("mouth_corner_left", mode="away_midline", dy=-0.7),
        _d("mouth_corner_right", mode="away_midline", dy=-0.7),
    ),
    14: (_d("mouth_corner_left", mode="away_midline"), _d("mouth_corner_right", mode="away_midline")),  # dimpler
    15: (_d("mouth_corner_left", dy=1), _d("mouth_corner_right", dy=1)),  # lip corner depressor
    17: (_d("chin", dy=-1),),  # chin raiser
    20: (  # lip stretcher: corners outward (laterally), slightly down
        _d("mouth_corner_left", mode="away_midline", dy=0.3),
        _d("mouth_corner_right", mode="away_midline", dy=0.3),
    ),
    23: (_d("mouth_corner_left", mode="toward_midline"), _d("mouth_corner_right", mode="toward_midline")),  # tightener
    24: (_d("upper_lip", dy=1), _d("lower_lip", dy=-1)),  # lip pressor: lips pressed together
    25: (_d("lower_lip", dy=1),),  # lips part
    26: (_d("chin", dy=1), _d("lower_lip", dy=1)),  # jaw drop
}


class AUConfig(_Frozen):
    """Flow-derived AU activation cue (not a trained AU detector)."""

    aus: tuple[int, ...] = (1, 2, 4, 5, 6, 7, 9, 10, 12, 14, 15, 17, 20, 23, 24, 25, 26)
    directions: dict[int, tuple[AUDirection, ...]] = Field(
        default_factory=lambda: dict(DEFAULT_AU_DIRECTIONS),
        description="expected motion per AU and ROI; ROIs not listed fall back to rois.au_rois with no direction",
    )
    normalise_by_iod: bool = Field(
        True,
        description="divide by inter-ocular distance (px) so activations compare across face sizes; "
        "x 100 gives percent of IOD",
    )
    scale: float = Field(100.0, gt=0, description="activation unit: 100 = percent of inter-ocular distance")
    reference_motion: Literal["none", "face_median"] = Field(
        "face_median",
        description="subtract the median flow over the face (landmark hull) before projecting: residual head "
        "translation left after the one-transform alignment moves every ROI alike, and the median ignores it "
        "as long as less than half of the face moves",
    )
    face_margin: float = Field(0.05, ge=0, le=0.5, description="landmark hull growth for the face median")
    midline_landmarks: tuple[int, ...] = Field(
        (27, 28, 29, 30, 33, 51, 57, 8),
        description="iBUG points on the vertical midline (nose bridge, nose tip, lip centres, chin): their mean x "
        "is the midline for the toward/away-from-midline directions",
    )
    positive_only: bool = Field(
        True, description="clip negative projections to 0 (motion against the AU's direction is not that AU)"
    )

    def names(self) -> list[str]:
        """AU names in output order, e.g. ``["AU1", "AU2", ...]``."""
        return [f"AU{au}" for au in self.aus]

    @model_validator(mode="after")
    def _directions_cover_aus(self) -> "AUConfig":
        missing = [au for au in self.aus if au not in self.directions]
        if missing:
            raise ValueError(f"aus {missing} have no expected direction in aus.directions; add one per AU")
        return self


# Pairs of AUs that co-occur in FACS-coded expressions (prototypes of EMFACS:
# happiness 6+12, surprise 1+2+5+26, fear 1+2+4+5+20+26, anger 4+5+7+23,
# disgust 9+10+15+17, sadness 1+4+15, contempt 12+14 unilateral). A fixed
# anatomical prior, never learned from labels.
DEFAULT_COOCCURRENCE: tuple[tuple[int, int], ...] = (
    (6, 12), (1, 2), (2, 5), (1, 5), (5, 26), (25, 26), (1, 4), (4, 5), (4, 7),
    (4, 20), (7, 23), (9, 10), (9, 17), (10, 17), (15, 17), (1, 15), (4, 15),
    (12, 14), (12, 25), (17, 24), (23, 24), (6, 7),
)


class GraphConfig(_Frozen):
    """AU-guided dynamic edge weights over the static ROI graph.

    For an edge (i, j) and a frame with AU activations a (A,):
        w_ij = base + gain * tanh( (sum_{au acting on i and j} a_au
                                  + cooccurrence_weight * sum_{(p,q) co-occurring,
                                       p acts on i, q acts on j} sqrt(a_p * a_q)) / activation_scale )
    so an edge with no AU evidence keeps weight ``base`` and saturates at
    ``base + gain``.
    """

    base: float = Field(1.0, ge=0, description="weight of a static edge with no AU evidence")
    gain: float = Field(1.0, ge=0, description="largest increase AU evidence can add")
    activation_scale: float = Field(
        1.0, gt=0, description="activation (% IOD) at which tanh reaches 0.76 of the gain"
    )
    cooccurrence: tuple[tuple[int, int], ...] = DEFAULT_COOCCURRENCE
    cooccurrence_weight: float = Field(0.5, ge=0, description="weight of co-occurring AU pairs vs shared AUs")
