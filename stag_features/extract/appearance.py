"""Appearance images of one clip: onset and apex faces, their difference, the
dynamic image and the MESTI image.

Input: the clip's aligned faces ``frames`` (T, H, W) grey or (T, H, W, 3) BGR,
uint8 (divided by 255) or float (taken as intensities in [0, 1]), and the
positions (0-based, into ``frames``) of the onset, apex and offset (offset None
= unknown: the last frame). Every output is (C, S, S) float32, C = 1 (grey) or
3 (BGR), S = ``AppearanceConfig.size``:

    onset       f_onset                              the neutral face (TSFmicro's spatial input)
    apex        f_apex                               the face at its peak (an input MEGANet compares)
    difference  f_apex - f_onset                     TSFmicro eq. (1), its temporal input
    dynamic     sum_t alpha_t f_t                    dynamic image (Bilen et al. 2016)
    mesti       sum_t beta_t f_t                     MESTI image (our definition, below)

Both pooled images are linear in the frames, so frames are resized first
(area interpolation is linear too: resizing then pooling = pooling then resizing).

**Dynamic image.** Approximate rank pooling (Bilen et al., CVPR 2016) of the T
frames of the span, t = 1..T. With psi = time average (psi_t = mean of frames
1..t, the paper's choice), the weights on the raw frames are

    alpha_t = 2(T - t + 1) - (T + 1)(H_T - H_{t-1}),    H_t = sum_{i=1..t} 1/i,  H_0 = 0;

with psi = identity, alpha_t = 2t - T - 1. Both sum to 0 (a constant image
pools to 0) and have sum_t t alpha_t > 0, so a linear ramp f_t = a + t b pools
to c b with c > 0 (the time-average weights are not monotone in t: they rise,
then fall towards the last frames).

**MESTI image.** MESTI-MEGANet (arXiv 2509.00056, v3) calls MESTI a rank
pooling that emphasises the onset-apex-offset pattern, centred on the apex; its
weights are not published. Ours: approximate rank pooling whose target order
is an apex-centred score s_t instead of time. Approximate rank pooling is one
RankSVM gradient step from zero, d ~ sum over pairs (u, t) with s_u < s_t of
(f_t - f_u), i.e.

    beta_t = #{u : s_u < s_t} - #{u : s_u > s_t}          (mesti_weights = pairwise_rank)

(with s_t = t this is Bilen's identity-psi alpha_t); or beta_t = s_t - mean(s)
(centred_score). The score s_t (mesti_profile): triangle, 0 at the span's first
frame, rising linearly to 1 at the apex, falling linearly to 0 at its last
frame; or gaussian, exp(-(t - apex)^2 / (2 sigma^2)). The apex frame gets the
largest weight, onset and offset the most negative; the weights sum to 0.

With ``normalise_weights`` each weight vector is divided by the sum of its
positive entries (a span of one frame has all-zero weights and pools to 0).
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from schemas.appearance_config import AppearanceConfig, MestiProfile, MestiWeights
from stag_features.errors import SampleError

STAGE = "appearance"
UINT8_LEVELS = 255.0  # uint8 frames are divided by this to give intensities in [0, 1]
BGR_CHANNELS = 3


@dataclass
class AppearanceImages:
    """The appearance images of one clip, each (C, S, S) float32 (module docstring)."""

    onset: np.ndarray
    apex: np.ndarray
    difference: np.ndarray
    dynamic: np.ndarray
    mesti: np.ndarray


def harmonic_numbers(n: int) -> np.ndarray:
    """(n + 1,) float64: H_0 = 0, H_t = sum_{i=1..t} 1/i."""
    return np.concatenate([[0.0], np.cumsum(1.0 / np.arange(1, n + 1))])


def dynamic_image_weights(T: int, psi: str = "time_average") -> np.ndarray:
    """(T,) float64 approximate rank pooling weights alpha_t, t = 1..T (module docstring)."""
    t = np.arange(1, T + 1, dtype=np.float64)
    if psi == "identity":
        return 2.0 * t - T - 1.0
    if psi != "time_average":
        raise ValueError(f"unknown dynamic_image_psi {psi!r}; choose time_average or identity")
    H = harmonic_numbers(T)
    return 2.0 * (T - t + 1.0) - (T + 1.0) * (H[T] - H[t.astype(int) - 1])


def mesti_scores(T: int, apex: int, profile: MestiProfile, width: float) -> np.ndarray:
    """(T,) float64 apex-centred target score s_t over a span of T frames; ``apex`` is its position in the span.

    triangle: t / apex before the apex, (T - 1 - t) / (T - 1 - apex) after (1 at the apex, 0 at both ends);
    gaussian: exp(-(t - apex)^2 / (2 sigma^2)), sigma = width * T."""
    t = np.arange(T, dtype=np.float64)
    if profile == "gaussian":
        sigma = width * T
        return np.exp(-((t - apex) ** 2) / (2.0 * sigma**2))
    if profile != "triangle":
        raise ValueError(f"unknown mesti_profile {profile!r}; choose triangle or gaussian")
    rising = t / apex if apex > 0 else np.ones(T)
    falling = (T - 1 - t) / (T - 1 - apex) if apex < T - 1 else np.ones(T)
    return np.where(t <= apex, rising, falling)


def mesti_weights(scores: np.ndarray, mode: MestiWeights) -> np.ndarray:
    """(T,) float64 rank-pooling weights from the target scores (T,): pairwise_rank or centred_score."""
    if mode == "centred_score":
        return scores - scores.mean()
    if mode != "pairwise_rank":
        raise ValueError(f"unknown mesti_weights {mode!r}; choose pairwise_rank or centred_score")
    order = np.sign(scores[:, None] - scores[None, :])  # (T, T): +1 where s_t > s_u
    return order.sum(1)  # (T,) #{u: s_u < s_t} - #{u: s_u > s_t}


def normalised(weights: np.ndarray) -> np.ndarray:
    """Weights divided by the sum of their positive entries (unchanged when none is positive)."""
    positive = weights[weights > 0].sum()
    return weights / positive if positive > 0 else weights


def rank_pool(frames: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """sum_t w_t f_t: frames (T, C, S, S), weights (T,) -> (C, S, S) float32 (accumulated in float64)."""
    return np.tensordot(weights, frames.astype(np.float64), axes=(0, 0)).astype(np.float32)


def _channels_first(frames: np.ndarray, colour: str, size: int, sample: str) -> np.ndarray:
    """(T, H, W) or (T, H, W, 3) -> (T, C, size, size) float32 intensities in [0, 1]."""
    is_colour = frames.ndim == 4 and frames.shape[-1] == BGR_CHANNELS
    if not (frames.ndim == 3 or is_colour):
        raise SampleError(sample, STAGE, f"frames must be (T, H, W) grey or (T, H, W, 3) BGR, got {frames.shape}")
    if colour == "colour" and not is_colour:
        raise SampleError(sample, STAGE, "colour appearance asked for (AppearanceConfig.colour) but the frames are grey")
    scale = UINT8_LEVELS if frames.dtype == np.uint8 else 1.0
    out = []
    for frame in frames:
        image = frame.astype(np.float32) / np.float32(scale)
        if is_colour and colour == "grey":
            image = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
        image = cv2.resize(image, (size, size), interpolation=cv2.INTER_AREA)  # (S, S) or (S, S, 3)
        out.append(image[None] if image.ndim == 2 else image.transpose(2, 0, 1))  # (C, S, S)
    return np.stack(out)  # (T, C, S, S)


def _check_positions(T: int, onset: int, apex: int, offset: int | None, sample: str) -> int:
    """The offset position (the last frame when None); SampleError unless 0 <= onset <= apex <= offset < T."""
    last = T - 1 if offset is None else offset
    if not 0 <= onset <= apex <= last < T:
        raise SampleError(
            sample, STAGE, f"positions must satisfy 0 <= onset <= apex <= offset < {T} frames, got onset {onset}, "
            f"apex {apex}, offset {offset}",
        )
    return last


def appearance_images(
    frames: np.ndarray, onset: int, apex: int, offset: int | None, config: AppearanceConfig, sample: str = ""
) -> AppearanceImages:
    """The appearance images of one clip (module docstring): frames (T, H, W) or (T, H, W, 3) aligned faces,
    onset/apex/offset positions into them. Raises SampleError naming the sample on bad input."""
    frames = np.asarray(frames)
    last = _check_positions(len(frames), onset, apex, offset, sample)
    start, stop = (onset, last + 1) if config.clip_span == "onset_offset" else (0, len(frames))
    span = _channels_first(frames[start:stop], config.colour, config.size, sample)  # (T', C, S, S)
    f_onset, f_apex = span[onset - start], span[apex - start]  # (C, S, S)
    alpha = dynamic_image_weights(len(span), config.dynamic_image_psi)  # (T',)
    scores = mesti_scores(len(span), apex - start, config.mesti_profile, config.mesti_gaussian_width)  # (T',)
    beta = mesti_weights(scores, config.mesti_weights)  # (T',)
    if config.normalise_weights:
        alpha, beta = normalised(alpha), normalised(beta)
    return AppearanceImages(
        onset=f_onset, apex=f_apex, difference=f_apex - f_onset,
        dynamic=rank_pool(span, alpha), mesti=rank_pool(span, beta),
    )
