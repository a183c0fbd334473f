"""Configuration of the motion stage: motion curve and frame ranking, frame
selection, TV-L1 flow, ROI features, AU activations and the ROI graph.

Owned by the motion pipeline (stag_features.motion / flow / roi_features /
aus / graph).
"""
from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class MotionConfig(_Frozen):
    """Cheap flow for the motion curve over every frame."""

    method: Literal["dis", "farneback"] = "dis"


class SelectionConfig(_Frozen):
    """Choice of K discriminative frames from the magnitude ranking."""

    k: int = Field(8, ge=1, le=64)


class TVL1Config(_Frozen):
    """OpenCV Dual TV-L1 parameters (defaults are OpenCV's)."""

    tau: float = 0.25
    lambda_: float = Field(0.15, alias="lambda")
    theta: float = 0.3
    scales: int = 5
    warps: int = 5
    epsilon: float = 0.01


class RoiFeatureConfig(_Frozen):
    patch_size: int = Field(16, ge=4, le=64)


class AUConfig(_Frozen):
    aus: tuple[int, ...] = (1, 2, 4, 5, 6, 7, 9, 10, 12, 14, 15, 17, 20, 23, 24, 25, 26)


class GraphConfig(_Frozen):
    pass
