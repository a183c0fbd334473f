"""Configuration of the Zarr store layout: padding, compression, float encoding.

These parameters are part of PipelineConfig (section ``store``), so they enter
the config hash: a store written with another layout is refused like any other
config change.
"""
from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class StoreConfig(BaseModel):
    """How per-sample arrays are laid out and compressed in the store."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_time: int = Field(
        1024,
        ge=2,
        description="padded length of per-clip time series (motion curve...); a clip analysed over more "
        "frames is recorded as a failure naming this limit",
    )
    flow_dtype: Literal["float16", "float32"] = Field(
        "float16",
        description="encoding of flow, strain and ROI patches: float16 halves the store (TV-L1 flow is "
        "accurate to ~0.05 px, far above float16's 1e-3 relative step); float32 stores them exactly",
    )
    compressor: Literal["zstd", "blosc-zstd", "blosc-lz4", "none"] = Field(
        "blosc-lz4",
        description="chunk compressor (blosc: byte shuffle, then zstd or LZ4); blosc-lz4 by default, the fastest to "
        "read and write among those that compress",
    )
    compression_level: int = Field(
        3, ge=1, le=22, description="zstd level, or blosc's clevel (at most 9); 3 is zstd's default speed/ratio point"
    )
    lock_timeout_s: float = Field(
        120.0,
        gt=0,
        description="how long a writer waits for the store's lock file (slot allocation, resizes) before failing "
        "(execution only: not in the config hash)",
    )


class CompositeImportConfig(BaseModel):
    """Import of precomputed flow images (MEGC 2019 composite, HTNet/STSNet format).

    The images hold onset->apex flow u, v and optical strain, each min-max
    normalised to 0..255 per image by their producer, so the stored flow is in
    normalised units (centred: value/255 - 0.5 for u and v, value/255 for
    strain), not pixels.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    image_size: int = Field(28, ge=8, le=1024, description="side (px) of the flow images; others are refused")
    channel_order_bgr: bool = Field(
        True, description="OpenCV returns B, G, R: with the producer's (u, v, strain) = (R, G, B) order reversed"
    )
    uv_centre: float = Field(
        0.5, ge=0, le=1, description="subtracted from u/255 and v/255 so that 0 roughly means no motion"
    )
    filename_template: str = Field(
        "{subject}_{clip} .png", description="flow image name per sample (note the space before .png)"
    )
    subject_prefix: dict[str, str] = Field(
        default_factory=lambda: {"casme2": "sub", "samm": "", "smic": ""},
        description="prefix the composite's sheet omits from subject ids in flow file names, per source dataset",
    )
