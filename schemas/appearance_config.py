"""Configuration of the appearance stage: the aligned onset and apex faces, their
difference frame, the dynamic image of the clip and the MESTI image.

Owned by stag_features.extract.appearance. These are the inputs of TSFmicro
(difference frame, onset face) and MESTI-MEGANet (MESTI image, apex face,
dynamic image). Every parameter has its default here; code paths hard-code none.
"""
from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

# how the MESTI image's target score rises from the onset to the apex and falls to the offset
MestiProfile = Literal["triangle", "gaussian"]
# how a target score becomes rank-pooling weights
MestiWeights = Literal["pairwise_rank", "centred_score"]


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class AppearanceConfig(_Frozen):
    """Appearance images of one clip, all on the aligned face at ``size`` x ``size``.

    Pixel values are intensities in [0, 1] (uint8 frames / 255). The difference
    frame, the dynamic image and the MESTI image are signed and have the same
    units: with ``normalise_weights`` their rank-pooling weights carry a total
    of +1 on the up-weighted frames and -1 on the down-weighted ones, so a clip's
    length or frame rate does not change their scale.
    """

    enabled: bool = Field(
        False, description="compute the appearance images at ingest and store them (schemas.store_spec."
        "APPEARANCE_ARRAYS); needed by TSFmicro and MEGANet, not by STAG or STSTNet",
    )
    size: int = Field(
        64, ge=8, le=512, description="side (px) every appearance image is resized to (area interpolation)"
    )
    colour: Literal["grey", "colour"] = Field(
        "grey",
        description="grey: one channel (colour frames are converted, OpenCV BGR -> grey); colour: three BGR "
        "channels, which needs colour frames",
    )
    clip_span: Literal["onset_offset", "all"] = Field(
        "onset_offset",
        description="frames the dynamic image and MESTI pool: onset to offset inclusive (the micro-expression; "
        "the last frame when the offset is unknown) or every frame given",
    )
    dynamic_image_psi: Literal["time_average", "identity"] = Field(
        "time_average",
        description="Bilen et al. 2016's approximate rank pooling of psi(frame): time_average (the paper's choice, "
        "alpha_t = 2(T - t + 1) - (T + 1)(H_T - H_{t-1}) on the raw frames) or identity (alpha_t = 2t - T - 1)",
    )
    mesti_profile: MestiProfile = Field(
        "triangle",
        description="MESTI target score over the clip (unpublished, our definition): triangle rises linearly from "
        "0 at the onset to 1 at the apex and falls linearly to 0 at the offset; gaussian is exp(-(t - apex)^2 / "
        "(2 sigma^2)) with sigma = mesti_gaussian_width x the clip's length",
    )
    mesti_gaussian_width: float = Field(
        0.25, gt=0, le=4, description="gaussian profile: sigma as a fraction of the pooled clip's length"
    )
    mesti_weights: MestiWeights = Field(
        "pairwise_rank",
        description="how the score becomes weights: pairwise_rank is approximate rank pooling with the target "
        "order of the score (one RankSVM gradient step from zero: alpha_t = #{u: s_u < s_t} - #{u: s_u > s_t}); "
        "centred_score is alpha_t = s_t - mean(s)",
    )
    normalise_weights: bool = Field(
        True,
        description="scale dynamic-image and MESTI weights so the positive ones sum to 1 (the negative ones then "
        "sum to -1, as all these weights sum to 0); off = the formulas' raw weights, which grow with clip length",
    )

