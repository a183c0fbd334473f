"""Synthetic micro-expression clips with known AUs, apex and dense motion.

From a real face image (scikit-image's astronaut by default, shipped with the
library; or any face image given) this makes:

identities  the face cropped around its dlib detection, then given another
            geometry (global scale / aspect / roll, smooth local warp, mirror)
            and appearance (per-channel gain, contrast, gamma); landmarks are
            re-detected on each identity with the real dlib backend.
clips       the identity's onset frame deformed by an AU-localised forward
            displacement field (Gaussian bumps at the landmarks each AU moves,
            ``schemas.synthetic_config.DEFAULT_AU_MOVERS``) scaled by a
            raised-cosine onset -> apex -> offset profile, plus a smooth sub-pixel
            head translation, lighting drift and sensor noise.

The displacement is the *forward* field: the onset pixel at p moves to
p + d_t(p) in frame t (the optical-flow convention of MER work, onset -> frame).
Frames are rendered by backward warping (cv2.remap) with the inverse field,
found by fixed-point iteration b = d(y - b), so the stored field is exact.

Everything is deterministic given the seed.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import cv2
import numpy as np

from schemas.face_config import FaceConfig
from schemas.synthetic_config import DEFAULT_EMOTION_AUS, SyntheticConfig
from stag_features.extract.face import LandmarkBackend, detect_subject, make_backend

EMOTION_AUS: dict[str, tuple[int, ...]] = dict(DEFAULT_EMOTION_AUS)


@dataclass
class SyntheticIdentity:
    """One synthetic person: the neutral face (size x size BGR) and its detected landmarks (68, 2)."""

    name: str
    image: np.ndarray
    landmarks: np.ndarray


@dataclass
class SyntheticClip:
    """A clip with its truth. ``displacement`` (T, 2, H, W) float32 is computed on access from
    ``expression_field`` x ``intensity`` + ``head_shift`` (so datasets stay small in memory)."""

    frames: np.ndarray  # (T, H, W, 3) uint8 BGR
    subject: str
    clip: str
    emotion: str
    aus: tuple[int, ...]
    onset: int
    apex: int
    offset: int
    expression_field: np.ndarray  # (2, H, W) float32, forward displacement at intensity 1 (px)
    intensity: np.ndarray  # (T,) float32, 0 at and before the onset, 1 at the apex
    head_shift: np.ndarray  # (T, 2) float32, head translation (dx, dy) relative to the onset (px)
    landmarks_onset: np.ndarray  # (68, 2) float32, detected on the identity's neutral face

    @property
    def displacement(self) -> np.ndarray:
        """(T, 2, H, W) float32 true forward displacement of each frame from the onset (px)."""
        field = self.intensity[:, None, None, None] * self.expression_field[None]
        return (field + self.head_shift[:, :, None, None]).astype(np.float32)


@lru_cache(maxsize=1)
def _default_backend() -> LandmarkBackend:
    return make_backend(FaceConfig(backend="dlib"))


def default_face_image() -> np.ndarray:
    """scikit-image's astronaut (Eileen Collins, NASA, public domain) as BGR uint8."""
    from skimage import data

    return cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR)


def _detect(image: np.ndarray, backend: LandmarkBackend, what: str):
    subject = detect_subject(image, backend, FaceConfig())
    if subject is None:
        raise ValueError(f"synthetic: no face found in {what}; give a frontal face image")
    return subject


def base_face(face_image: np.ndarray | None, config: SyntheticConfig, backend: LandmarkBackend) -> np.ndarray:
    """The face of ``face_image`` (default: astronaut) cropped square around its detection, size x size."""
    image = default_face_image() if face_image is None else face_image
    subject = _detect(image, backend, "the source face image")
    centre = subject.landmarks.mean(axis=0)
    side = config.face_crop_scale * (subject.box[2] - subject.box[0])
    scale = config.size / side
    transform = np.array([[scale, 0, config.size / 2 - scale * centre[0]], [0, scale, config.size / 2 - scale * centre[1]]])
    return cv2.warpAffine(image, transform, (config.size, config.size), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT)


def _identity_warp(rng: np.random.Generator, config: SyntheticConfig) -> tuple[np.ndarray, np.ndarray]:
    """Backward maps (map_x, map_y) of a random global similarity+stretch and smooth local warp."""
    size = config.size
    angle = np.deg2rad(rng.uniform(-1, 1) * config.identity_rotation_deg)
    scale = 1 + rng.uniform(-1, 1) * config.identity_scale
    stretch = 1 + rng.uniform(-1, 1) * config.identity_stretch
    forward = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]]) @ np.diag([scale * stretch, scale])
    inverse = np.linalg.inv(forward)
    y, x = np.mgrid[0:size, 0:size].astype(np.float64)
    c = (size - 1) / 2
    map_x = inverse[0, 0] * (x - c) + inverse[0, 1] * (y - c) + c
    map_y = inverse[1, 0] * (x - c) + inverse[1, 1] * (y - c) + c
    sigma = config.identity_warp_smoothness * size
    for grid in (map_x, map_y):
        noise = cv2.GaussianBlur(rng.standard_normal((size, size)), (0, 0), sigma)
        grid += noise / (np.abs(noise).max() + 1e-12) * config.identity_warp_px
    return map_x.astype(np.float32), map_y.astype(np.float32)


def _appearance(image: np.ndarray, rng: np.random.Generator, config: SyntheticConfig) -> np.ndarray:
    values = image.astype(np.float64) / 255.0
    values *= 1 + rng.uniform(-1, 1, size=3) * config.identity_colour_gain
    mean = values.mean()
    values = mean + (values - mean) * rng.uniform(*config.identity_contrast)
    values = np.clip(values, 0, 1) ** rng.uniform(*config.identity_gamma)
    return np.clip(values * 255 + 0.5, 0, 255).astype(np.uint8)


def make_identity(
    name: str, rng: np.random.Generator, config: SyntheticConfig, base: np.ndarray, backend: LandmarkBackend | None = None
) -> SyntheticIdentity:
    """A new person from ``base`` (size x size BGR): random geometry and appearance; the
    detector must find it (up to ``identity_attempts`` draws)."""
    backend = backend or _default_backend()
    for _ in range(config.identity_attempts):
        map_x, map_y = _identity_warp(rng, config)
        image = cv2.remap(base, map_x, map_y, cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT)
        if config.identity_mirror and rng.random() < 0.5:
            image = np.ascontiguousarray(image[:, ::-1])
        image = _appearance(image, rng, config)
        subject = detect_subject(image, backend, FaceConfig())
        if subject is not None:
            return SyntheticIdentity(name=name, image=image, landmarks=subject.landmarks.astype(np.float32))
    raise ValueError(f"synthetic identity {name!r}: the detector found no face in {config.identity_attempts} draws")


def intensity_profile(n_frames: int, onset: int, apex: int, offset: int) -> np.ndarray:
    """(T,) raised-cosine rise onset -> apex (0 -> 1) and fall apex -> offset (1 -> 0)."""
    t = np.arange(n_frames, dtype=np.float64)
    profile = np.zeros(n_frames)
    rise = (t > onset) & (t <= apex)
    profile[rise] = 0.5 - 0.5 * np.cos(np.pi * (t[rise] - onset) / (apex - onset))
    fall = (t > apex) & (t < offset)
    profile[fall] = 0.5 + 0.5 * np.cos(np.pi * (t[fall] - apex) / (offset - apex))
    return profile.astype(np.float32)


def expression_field(
    landmarks: np.ndarray, aus: tuple[int, ...], strengths: np.ndarray, amplitude: float, config: SyntheticConfig
) -> np.ndarray:
    """(2, size, size) float32 forward displacement at the apex: AU movers as Gaussian bumps,
    directions rotated with the face's roll, peak magnitude ``amplitude`` px."""
    size = config.size
    eye_vector = landmarks[42:48].mean(axis=0) - landmarks[36:42].mean(axis=0)
    roll = np.arctan2(eye_vector[1], eye_vector[0])
    rotation = np.array([[np.cos(roll), -np.sin(roll)], [np.sin(roll), np.cos(roll)]])
    iod = float(np.linalg.norm(landmarks[45] - landmarks[36]))
    y, x = np.mgrid[0:size, 0:size].astype(np.float32)
    field = np.zeros((2, size, size), dtype=np.float64)
    for au, strength in zip(aus, strengths):
        for mover in config.au_movers[au]:
            anchor = landmarks[list(mover.landmarks)].mean(axis=0)
            direction = rotation @ np.array([mover.dx, mover.dy])
            direction = direction / (np.linalg.norm(direction) + 1e-12) * mover.weight * strength
            sigma = mover.radius * iod
            bump = np.exp(-((x - anchor[0]) ** 2 + (y - anchor[1]) ** 2) / (2 * sigma**2))
            field[0] += direction[0] * bump
            field[1] += direction[1] * bump
    peak = np.sqrt(field[0] ** 2 + field[1] ** 2).max()
    return (field * (amplitude / peak)).astype(np.float32)


def render_frame(image: np.ndarray, forward: np.ndarray, iterations: int) -> np.ndarray:
    """``image`` moved by the forward field (2, H, W): output(y) = image(y - b(y)), b = forward(y - b)."""
    height, width = forward.shape[1:]
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    back_x, back_y = forward[0].copy(), forward[1].copy()
    for _ in range(iterations):
        src_x, src_y = x - back_x, y - back_y
        back_x = cv2.remap(forward[0], src_x, src_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        back_y = cv2.remap(forward[1], src_x, src_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    return cv2.remap(image, x - back_x, y - back_y, cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT)


def _head_path(rng: np.random.Generator, config: SyntheticConfig) -> np.ndarray:
    """(T, 2) smooth head translation: a slow sine per axis, 0 at the onset, at most
    ``head_motion_px`` px per axis (a sine moves at most 2 from its onset value, hence / 2)."""
    t = np.arange(config.n_frames)
    path = np.zeros((config.n_frames, 2))
    for axis in range(2):
        cycles, phase = rng.uniform(*config.head_motion_cycles), rng.uniform(0, 2 * np.pi)
        wave = np.sin(2 * np.pi * cycles * t / config.n_frames + phase)
        path[:, axis] = (wave - wave[config.onset]) / 2 * config.head_motion_px * rng.uniform()
    return path.astype(np.float32)


def make_clip(
    identity: SyntheticIdentity, emotion: str, clip: str, rng: np.random.Generator, config: SyntheticConfig | None = None
) -> SyntheticClip:
    """One clip of ``identity`` showing ``emotion`` (its AUs from ``config.emotions``)."""
    config = config or SyntheticConfig()
    if emotion not in config.emotions:
        raise ValueError(f"synthetic: unknown emotion {emotion!r}; known: {sorted(config.emotions)}")
    aus = tuple(config.emotions[emotion])
    onset = config.onset
    apex = onset + int(rng.integers(config.rise_frames[0], config.rise_frames[1] + 1))
    offset = apex + int(rng.integers(config.fall_frames[0], config.fall_frames[1] + 1))
    strengths = rng.uniform(*config.au_intensity, size=len(aus))
    field = expression_field(identity.landmarks, aus, strengths, rng.uniform(*config.amplitude_px), config)
    intensity = intensity_profile(config.n_frames, onset, apex, offset)
    head = _head_path(rng, config)
    gain_end, tilt_end = rng.uniform(-1, 1, size=2) * (config.lighting_drift, config.lighting_tilt)
    ramp = np.linspace(-0.5, 0.5, config.size, dtype=np.float32)[None, :, None]
    frames = np.empty((config.n_frames, config.size, config.size, 3), dtype=np.uint8)
    for t in range(config.n_frames):
        forward = intensity[t] * field + head[t][:, None, None]
        moved = render_frame(identity.image, forward, config.inverse_iterations).astype(np.float32)
        progress = t / (config.n_frames - 1)
        lit = moved * (1 + gain_end * progress + tilt_end * progress * ramp)
        noisy = lit + rng.normal(0, config.noise_sigma, size=lit.shape)
        frames[t] = np.clip(noisy + 0.5, 0, 255).astype(np.uint8)
    return SyntheticClip(
        frames=frames, subject=identity.name, clip=clip, emotion=emotion, aus=aus, onset=onset, apex=apex,
        offset=offset, expression_field=field, intensity=intensity, head_shift=head,
        landmarks_onset=identity.landmarks,
    )


def make_dataset(
    n_subjects: int,
    clips_per_emotion: int,
    seed: int,
    config: SyntheticConfig | None = None,
    emotions: tuple[str, ...] | None = None,
    face_image: np.ndarray | None = None,
) -> list[SyntheticClip]:
    """``n_subjects`` identities x emotions x ``clips_per_emotion`` clips, deterministic given ``seed``.

    Subjects are named ``s01``...; clips ``<subject>_<emotion>_<k>``.
    """
    config = config or SyntheticConfig()
    emotions = tuple(emotions or config.emotions)
    if n_subjects < 1 or clips_per_emotion < 1:
        raise ValueError(f"synthetic: need n_subjects >= 1 and clips_per_emotion >= 1, got {n_subjects}, {clips_per_emotion}")
    backend = _default_backend()
    base = base_face(face_image, config, backend)
    streams = np.random.SeedSequence(seed).spawn(n_subjects)
    clips: list[SyntheticClip] = []
    for number, stream in enumerate(streams, start=1):
        rng = np.random.default_rng(stream)
        identity = make_identity(f"s{number:02d}", rng, config, base, backend)
        for emotion in emotions:
            for k in range(1, clips_per_emotion + 1):
                clips.append(make_clip(identity, emotion, f"{identity.name}_{emotion}_{k}", rng, config))
    return clips
