"""Configuration of the synthetic micro-expression generator (stag_features.adapters.synthetic_clips).

Directions are image-plane unit vectors (x right, y down) on an upright face;
they are rotated with the face's roll. "right" in comments is the subject's
right, which is the image's left (iBUG points 17-21, 36-41, 48).
"""
from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class AUMover(BaseModel):
    """One Gaussian bump of motion: the skin around the mean of ``landmarks``
    moves along (dx, dy) with weight ``weight``; its spread is ``radius`` x IOD."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    landmarks: tuple[int, ...]
    dx: float = 0.0
    dy: float = 0.0
    weight: float = Field(1.0, gt=0)
    radius: float = Field(0.18, gt=0, le=1.0, description="Gaussian sigma as a fraction of inter-ocular distance")


def _m(*landmarks: int, dx: float = 0.0, dy: float = 0.0, weight: float = 1.0, radius: float = 0.18) -> AUMover:
    return AUMover(landmarks=landmarks, dx=dx, dy=dy, weight=weight, radius=radius)


# FACS appearance changes (Ekman, Friesen & Hager 2002) as local skin motion.
DEFAULT_AU_MOVERS: dict[int, tuple[AUMover, ...]] = {
    1: (_m(20, 21, dy=-1), _m(22, 23, dy=-1)),  # inner brow raiser
    2: (_m(17, 18, dy=-1), _m(25, 26, dy=-1)),  # outer brow raiser
    4: (_m(20, 21, dx=0.5, dy=0.85), _m(22, 23, dx=-0.5, dy=0.85)),  # brows down and together
    5: (_m(37, 38, dy=-1, radius=0.12), _m(43, 44, dy=-1, radius=0.12)),  # upper lids up
    6: (_m(2, 31, 41, dy=-1, radius=0.25), _m(14, 35, 46, dy=-1, radius=0.25)),  # cheeks raised
    7: (_m(40, 41, dy=-1, radius=0.12), _m(46, 47, dy=-1, radius=0.12)),  # lower lids tightened up
    9: (_m(31, 32, dx=0.2, dy=-1, radius=0.14), _m(34, 35, dx=-0.2, dy=-1, radius=0.14), _m(28, 29, dy=-0.6, weight=0.6)),
    10: (_m(50, 51, 52, dy=-1, radius=0.16),),  # upper lip raised
    12: (_m(48, dx=-0.8, dy=-0.6), _m(54, dx=0.8, dy=-0.6)),  # lip corners out and up
    14: (_m(48, dx=-1, weight=0.6), _m(54, dx=1, weight=0.6)),  # dimpler: corners pulled back
    15: (_m(48, dy=1), _m(54, dy=1)),  # lip corners down
    17: (_m(57, 8, dy=-1, radius=0.22),),  # chin boss pushed up
    20: (_m(48, dx=-1, dy=0.3), _m(54, dx=1, dy=0.3)),  # lips stretched sideways
    23: (_m(48, dx=1, weight=0.7), _m(54, dx=-1, weight=0.7)),  # lips tightened: corners in
    24: (_m(51, dy=1, radius=0.14), _m(57, dy=-1, radius=0.14)),  # lips pressed together
    25: (_m(57, dy=1, weight=0.8, radius=0.14),),  # lips part
    26: (_m(57, 8, dy=1, radius=0.3),),  # jaw drop
}

# Emotions as prototype AU combinations (EMFACS): the labels the demo learns.
DEFAULT_EMOTION_AUS: dict[str, tuple[int, ...]] = {
    "happiness": (6, 12),
    "surprise": (1, 2, 5, 26),
    "disgust": (4, 9, 10),
    "sadness": (1, 4, 15),
    "anger": (4, 5, 7, 23),
}


class SyntheticConfig(_Frozen):
    """Clip shape, expression strength, nuisances and identity variation."""

    size: int = Field(256, ge=128, le=1024, description="frames are size x size px (the face fills ~45%)")
    face_crop_scale: float = Field(
        2.2, ge=1.5, le=4.0, description="crop side around the source face, in detector-box sides"
    )
    n_frames: int = Field(24, ge=8, le=300, description="frames per clip (short: demo ingest stays fast)")
    onset: int = Field(2, ge=0, description="position of the onset (neutral reference) frame")
    rise_frames: tuple[int, int] = Field((5, 8), description="onset -> apex duration range (frames)")
    fall_frames: tuple[int, int] = Field((5, 8), description="apex -> offset duration range (frames)")
    amplitude_px: tuple[float, float] = Field(
        (0.8, 2.5), description="peak skin displacement at the apex (px at frame size): micro-expression scale"
    )
    au_intensity: tuple[float, float] = Field((0.7, 1.0), description="relative strength of each AU of a clip")
    noise_sigma: float = Field(1.0, ge=0, description="sensor noise, grey levels (Gaussian, per pixel and frame)")
    head_motion_px: float = Field(0.3, ge=0, description="largest smooth head translation from the onset (px)")
    head_motion_cycles: tuple[float, float] = Field(
        (0.3, 1.0), description="range of sine cycles per clip of each head-motion axis (slow sway, not tremor)"
    )
    lighting_drift: float = Field(0.03, ge=0, le=0.5, description="largest relative brightness change over a clip")
    lighting_tilt: float = Field(0.02, ge=0, le=0.5, description="largest left-right brightness gradient change")
    inverse_iterations: int = Field(
        4, ge=1, le=20, description="fixed-point steps inverting the forward displacement for rendering"
    )
    identity_scale: float = Field(0.06, ge=0, le=0.3, description="identity face size variation (fraction)")
    identity_stretch: float = Field(0.08, ge=0, le=0.3, description="identity width/height ratio variation")
    identity_rotation_deg: float = Field(5.0, ge=0, le=20, description="identity head roll variation")
    identity_warp_px: float = Field(3.0, ge=0, le=10, description="identity local shape warp amplitude")
    identity_warp_smoothness: float = Field(0.12, gt=0, le=1, description="local warp Gaussian sigma / frame size")
    identity_mirror: bool = Field(True, description="half of the identities are mirror images")
    identity_colour_gain: float = Field(0.15, ge=0, le=0.5, description="per-channel gain variation")
    identity_contrast: tuple[float, float] = Field((0.8, 1.2), description="contrast range around the mean")
    identity_gamma: tuple[float, float] = Field((0.8, 1.25), description="gamma range")
    identity_attempts: int = Field(8, ge=1, description="draws tried until the detector finds the new identity")
    au_movers: dict[int, tuple[AUMover, ...]] = Field(default_factory=lambda: dict(DEFAULT_AU_MOVERS))
    emotions: dict[str, tuple[int, ...]] = Field(default_factory=lambda: dict(DEFAULT_EMOTION_AUS))

    @model_validator(mode="after")
    def _consistent(self) -> "SyntheticConfig":
        longest = self.onset + self.rise_frames[1] + self.fall_frames[1]
        if longest >= self.n_frames:
            raise ValueError(f"synthetic: onset + longest rise + fall = {longest} frames does not fit in n_frames={self.n_frames}")
        for pair in ("rise_frames", "fall_frames", "amplitude_px", "head_motion_cycles", "au_intensity", "identity_contrast", "identity_gamma"):
            low, high = getattr(self, pair)
            if not 0 < low <= high:
                raise ValueError(f"synthetic.{pair} must be (low, high) with 0 < low <= high, got {(low, high)}")
        for emotion, aus in self.emotions.items():
            missing = [au for au in aus if au not in self.au_movers]
            if missing:
                raise ValueError(f"synthetic emotion {emotion!r} uses AUs {missing} that have no au_movers entry")
        return self
