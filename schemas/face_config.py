"""Configuration of the face stage: detection, landmarks, alignment, ROIs.

Owned by the face pipeline (stag_features.face / align / rois). Every
parameter has its default here; nothing in code paths hard-codes these values.
"""
from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class FaceConfig(_Frozen):
    """Face detection and 68-point landmarking."""

    backend: Literal["dlib", "fan"] = "dlib"
    detector_upsample: int = Field(1, ge=0, le=3, description="dlib HOG pyramid upsampling")
    missing_face: Literal["fail", "skip"] = Field(
        "fail", description="frames without a face: fail the clip, or skip those frames"
    )


class AlignConfig(_Frozen):
    """Similarity alignment from the onset frame to a canonical face."""

    crop_size: int = Field(224, ge=32, le=1024)


class RoiSpec(_Frozen):
    """One facial region: a box around some landmarks, grown by a fraction of
    the inter-ocular distance."""

    name: str
    landmarks: tuple[int, ...]
    margin: float = Field(0.1, description="box margin as a fraction of inter-ocular distance")


class RoiConfig(_Frozen):
    """Named ROI set, AU-to-ROI map and static anatomical adjacency."""

    rois: tuple[RoiSpec, ...] = ()
    au_rois: dict[int, tuple[str, ...]] = Field(default_factory=dict)
    adjacency: tuple[tuple[str, str], ...] = ()
