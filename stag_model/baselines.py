"""STSTNet (Liong, See, Wong and Phan, 2019), in the same framework as STAG.

"Shallow Triple Stream Three-dimensional CNN for micro-expression
recognition": the optical-flow features u, v and optical strain of the
onset-to-apex pair are stacked into a 28 x 28 x 3 volume; three shallow
parallel streams (3, 5 and 8 filters of 3 x 3, each followed by ReLU, batch
norm, 3 x 3 max-pooling and dropout) read that volume; their maps are
concatenated, average-pooled to 5 x 5 x 16 and classified by one dense layer.
Sizes, layer order and input follow the authors' released code
(christy1206/STSTNet, ``main.py``): padding 2 (28 -> 30 -> 10 -> 5), conv ->
ReLU -> batch norm in each stream, and as input the flow image as OpenCV reads
it (channels strain, v, u, each min-max normalised to 0..255 per image;
`megc2019_image`, the convention of schemas/megc2019_image.py). Both are
switches of `StstnetConfig` (``layer_order``, ``input``).

STSTNet sees one frame. With K > 1 it takes the selected frame of largest mean
flow magnitude (the estimated apex), computed from the input alone.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from schemas.megc2019_image import LEVELS
from schemas.model_config import StstnetConfig
from stag_model.model import ShallowStream, StagBatch, focal_loss


def megc2019_image(volume: torch.Tensor) -> torch.Tensor:
    """The MEGC 2019 flow image of each sample, as OpenCV reads it, from its (u, v, strain) volume.

        image_c = round(255 * (x_c - min x_c) / (max x_c - min x_c))   per sample and channel (0 if flat)

    then the channel order reversed to (strain, v, u). Values are whole numbers 0..255 (float), the 8-bit
    image of ``stag export flow-images``. A per-channel affine map with positive scale (the composite's
    channel / 255 - 0.5, a z-score) leaves the image unchanged. volume (B, 3, H, W) -> (B, 3, H, W)."""
    x = volume.float()
    low = x.amin((-2, -1), keepdim=True)  # (B, 3, 1, 1)
    span = x.amax((-2, -1), keepdim=True) - low  # (B, 3, 1, 1)
    scaled = torch.where(span > 0, (x - low) / span.clamp(min=torch.finfo(x.dtype).tiny), torch.zeros_like(x))
    return torch.round(scaled * LEVELS).flip(1)  # (B, 3, H, W): strain, v, u


class Ststnet(nn.Module):
    """``forward(batch, targets)`` returns ``logits, loss`` like `Stag`."""

    def __init__(self, config: StstnetConfig, n_classes: int):
        super().__init__()
        self.config = config
        self.streams = nn.ModuleList(  # each: conv, ReLU and BN in config.layer_order -> max-pool -> dropout
            ShallowStream(3, c, config.kernel_size, config.padding, config.max_pool, config.dropout, config.layer_order)
            for c in config.stream_channels
        )
        self.avg_pool = nn.AvgPool2d(config.avg_pool, stride=config.avg_pool)
        side = (config.input_size + 2 * config.padding - config.kernel_size + 1 + 2 - config.max_pool) // config.max_pool + 1
        side //= config.avg_pool
        self.fc = nn.Linear(sum(config.stream_channels) * side * side, n_classes)
        self.register_buffer("class_weights", torch.ones(n_classes), persistent=True)

    def set_class_weights(self, weights: torch.Tensor) -> None:
        self.class_weights.copy_(weights)

    def set_au_prior(self, prior: torch.Tensor) -> None:
        """STSTNet uses no AU input; accepted so the trainer treats models alike."""

    @staticmethod
    def apex_volume(b: StagBatch, size: int, frame: str = "largest_motion") -> torch.Tensor:
        """(B, 3, size, size): (u, v, strain) of the frame of largest mean flow magnitude, or of the first
        frame (``frame="first"``)."""
        if frame == "first":
            k = torch.zeros(b.flow.shape[0], dtype=torch.long, device=b.flow.device)  # (B,)
        else:
            magnitude = b.flow.float().pow(2).sum(2).sqrt().mean((-2, -1))  # (B, K)
            magnitude = magnitude.masked_fill(~b.frame_mask, float("-inf"))
            k = magnitude.argmax(1)  # (B,)
        rows = torch.arange(b.flow.shape[0], device=k.device)
        x = torch.cat([b.flow[rows, k], b.strain[rows, k][:, None]], 1)  # (B, 3, H, W)
        if x.shape[-2:] != (size, size):
            x = F.interpolate(x, size=(size, size), mode="area")  # (B, 3, size, size)
        return x

    def forward(self, b: StagBatch, targets: torch.Tensor | None = None, valid: torch.Tensor | None = None):
        x = self.apex_volume(b, self.config.input_size, self.config.frame)  # (B, 3, 28, 28): u, v, strain
        if self.config.input == "megc2019_image":
            x = megc2019_image(x)  # (B, 3, 28, 28): strain, v, u in 0..255
        x = torch.cat([s(x) for s in self.streams], 1)  # (B, 16, 10, 10)
        x = self.avg_pool(x)  # (B, 16, 5, 5)
        logits = self.fc(x.flatten(1))  # (B, C)
        return logits, (self.criterion(logits, targets, valid) if targets is not None else None)

    def criterion(self, logits: torch.Tensor, targets: torch.Tensor, valid: torch.Tensor | None = None) -> torch.Tensor:
        weights = self.class_weights if self.config.class_weighting != "none" else None
        return focal_loss(logits, targets, self.config.focal_gamma, weights, valid=valid)
