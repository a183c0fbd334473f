"""STSTNet (Liong, See, Wong and Phan, 2019), in the same framework as STAG.

"Shallow Triple Stream Three-dimensional CNN for micro-expression
recognition": the optical-flow features u, v and optical strain of the
onset-to-apex pair are stacked into a 28 x 28 x 3 volume; three shallow
parallel streams (3, 5 and 8 filters of 3 x 3, each followed by batch norm,
ReLU, 3 x 3 max-pooling and dropout) read that volume; their maps are
concatenated, average-pooled to 5 x 5 x 16 and classified by one dense layer.
Sizes follow the authors' released port (padding 2: 28 -> 30 -> 10 -> 5).

STSTNet sees one frame. With K > 1 it takes the selected frame of largest mean
flow magnitude (the estimated apex), computed from the input alone.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from schemas.model_config import StstnetConfig
from stag_model.model import ShallowStream, StagBatch, focal_loss


class Ststnet(nn.Module):
    """``forward(batch, targets)`` returns ``logits, loss`` like `Stag`."""

    def __init__(self, config: StstnetConfig, n_classes: int):
        super().__init__()
        self.config = config
        self.streams = nn.ModuleList(  # each: conv -> BN -> ReLU -> max-pool -> dropout
            ShallowStream(3, c, config.kernel_size, config.padding, config.max_pool, config.dropout)
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
    def apex_volume(b: StagBatch, size: int) -> torch.Tensor:
        """(B, 3, size, size): (u, v, strain) of the frame of largest mean flow magnitude."""
        magnitude = b.flow.float().pow(2).sum(2).sqrt().mean((-2, -1))  # (B, K)
        magnitude = magnitude.masked_fill(~b.frame_mask, float("-inf"))
        k = magnitude.argmax(1)  # (B,)
        rows = torch.arange(b.flow.shape[0], device=k.device)
        x = torch.cat([b.flow[rows, k], b.strain[rows, k][:, None]], 1)  # (B, 3, H, W)
        if x.shape[-2:] != (size, size):
            x = F.interpolate(x, size=(size, size), mode="area")  # (B, 3, size, size)
        return x

    def forward(self, b: StagBatch, targets: torch.Tensor | None = None, valid: torch.Tensor | None = None):
        x = self.apex_volume(b, self.config.input_size)  # (B, 3, 28, 28)
        x = torch.cat([s(x) for s in self.streams], 1)  # (B, 16, 10, 10)
        x = self.avg_pool(x)  # (B, 16, 5, 5)
        logits = self.fc(x.flatten(1))  # (B, C)
        return logits, (self.criterion(logits, targets, valid) if targets is not None else None)

    def criterion(self, logits: torch.Tensor, targets: torch.Tensor, valid: torch.Tensor | None = None) -> torch.Tensor:
        weights = self.class_weights if self.config.class_weighting != "none" else None
        return focal_loss(logits, targets, self.config.focal_gamma, weights, valid=valid)
