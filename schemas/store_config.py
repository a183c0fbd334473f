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


PhaseFrame = Literal["onset_apex", "apex_offset", "megc_onset_apex"]


class CompositePhasesConfig(BaseModel):
    """The MEGC 2019 composite with two motion phases and real faces (``PhaseImageProducer``).

    Frames come from a second group's TV-L1 images (``phases_dir``: onset -> apex and
    apex -> offset, channels B = strain, G = v, R = u as in the flow images; values are not
    min-max normalised per image, so u, v = channel/255 - uv_centre keep one scale across
    samples) and optionally from ``flow_dir``'s onset -> apex images, warped into the phase
    images' frame. Landmarks come from the sample's apex face (``apex_face_dir``, 224 px
    tight crops) and are mapped into the 28 px frame of the flow images.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    frames: tuple[PhaseFrame, ...] = Field(
        ("onset_apex", "apex_offset"), min_length=1,
        description="motion frames in order (K): phase images onset->apex, apex->offset; megc_onset_apex adds "
        "the flow_dir image (another TV-L1 run, per-image min-max units)")
    image: CompositeImportConfig = Field(default_factory=CompositeImportConfig,
                                         description="how a 28 px flow image is read (size, channel order, centre)")
    reference_frame: Literal["phases", "flow"] = Field(
        "phases", description="the crop every frame and the landmarks are brought into: the phase images' "
        "(flow images warped into it) or the flow images' (phase images warped into it)")
    landmarks: Literal["real", "schematic"] = Field(
        "real", description="68 landmarks from the apex face (real) or the schematic frontal face")
    phase_minmax: bool = Field(
        False, description="min-max normalise each phase image's u, v and strain per image, as the flow images "
        "are (u, v = (c - min)/(max - min) - uv_centre): one scale per image instead of one across samples")
    phase_landmark_scale: float = Field(
        0.85, gt=0, description="the phase images' crop relative to the apex face's: landmarks scaled about the "
        "image centre (fitted by benchmarks/composite_alignment.py: eye landmarks against strain)")
    phase_landmark_shift_px: tuple[float, float] = Field(
        (0.0, 1.75), description="then shifted by (dx, dy) px at the flow image size (same fit)")
    face_border_fractions: tuple[float, ...] = Field(
        (0.25, 0.5), description="borders (fraction of the side) added to a tight apex face, in turn, where no "
        "face is found on it as it is")
    face_size: int = Field(112, ge=16, le=1024, description="side of the stored apex face (px, grey)")
    roi_min_side_px: float = Field(
        7.0, ge=0, description="ROI boxes grown about their centres to at least this side at the flow image size "
        "(HTNet's 7 x 7 px blocks on the same 28 px images): landmark extents alone give eye boxes of ~2 px")
