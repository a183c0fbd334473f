"""TSFmicro (Liu, Nan, Qian and Fu; ../shared/papers/tsfmicro_paper.md), in the same
framework as STAG: a temporal branch with retention over the onset-to-apex
difference frame and a shallow spatial branch over the onset frame, fused.

The paper, section by section, and where it lives here:

- 3.1, eq. (1): f_t = f_apex - f_onset, the temporal input
                                  -> made at ingest (stag_features.extract.appearance).
- 3.1, eqs. (3)-(5): a conv stem (3 x 3 conv, batch norm, GELU) makes the tokens
                                  -> `ConvStem` (stride-2 layers down to the token grid).
- 3.1, eq. (2): RetNet blocks over the tokens
                                  -> stag_model.retention.RetentionStack.
- 3.2, eqs. (6)-(8): the onset frame cut into P x P patches, flattened, plus a
  learned position embedding; two transformer blocks; a LayerNorm before the
  reshape to the grid              -> `SpatialBranch`.
- 3.3, eq. (9): F_t-s = F_t + F_s on the common grid; a fully connected layer
  (the paper's 1024), normalisation, swish, average over tokens (eqs. 10-12),
  then the classifier; cross-entropy (eq. 13)
                                  -> `Tsfmicro.head`, the loss is the trainer's.
- 4.4, the fusion variants (``TsfmicroConfig.fusion``), on the token grid
  (a (B, N, d) token sum is eq. 9's (B, d, g, g) sum after the reshape):
      early   R(stem(diff) + P(onset)) -> T(.)   fused before either backbone
      t_to_s  T(R(stem(diff)) + P(onset))       temporal features enter the spatial branch
      s_to_t  R(T(P(onset)) + stem(diff))       spatial features enter the temporal branch
      late    R(stem(diff)) + T(P(onset))       each branch alone, summed (the paper's best)
  with R the retention stack, T the transformer blocks (+ LayerNorm), P the patch
  embedding with positions. ``temporal_branch`` / ``spatial_branch`` off give
  Table 6's W/O S and W/O T: the other branch alone.

Every variant has the same layers, so their parameter counts are equal. Widths
are smaller than the paper's (512 / 1024 at 224 px on a 14 x 14 grid): with the
defaults (28 px grey inputs, 7 x 7 grid of 4 x 4 patches, d 64) and 5 classes the
model has 193,221 parameters; on one CPU thread a batch of 32 trains (forward,
backward, AdamW) in about 0.06 s, against 0.34 s on a 14 x 14 grid at 28 px
(measured for the 3-channel flow / 1-channel face inputs of the composite).

Shapes: B batch, C input channels, H W input side, g grid side, N = g^2 tokens,
d = ``d_model``. Inputs: ``difference`` (B, C, H, W) and ``onset`` (B, C, H, W);
output logits (B, n_classes).
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from schemas.model_config import TsfmicroConfig
from stag_model.retention import RetentionStack

STEM_KERNEL = 3  # eq. (3): 3 x 3 convolutions
DOWNSAMPLE = 2  # each stem layer halves the side


class ConvStem(nn.Module):
    """Eqs. (3)-(5): (conv 3 x 3, batch norm, GELU) layers, each of stride 2, down to the token grid (one
    layer of stride 1 when the input is already at grid size). x (B, C, H, W) -> tokens (B, N, d)."""

    def __init__(self, in_channels: int, config: TsfmicroConfig):
        super().__init__()
        halvings = (config.input_size // config.grid).bit_length() - 1
        layers: list[nn.Module] = []
        width = in_channels
        for stride in [DOWNSAMPLE] * halvings or [1]:
            layers += [nn.Conv2d(width, config.d_model, STEM_KERNEL, stride=stride, padding=STEM_KERNEL // 2),
                       nn.BatchNorm2d(config.d_model), nn.GELU()]
            width = config.d_model
        self.layers = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, H, W)
        return self.layers(x).flatten(2).transpose(1, 2)  # (B, d, g, g) -> (B, N, d)


class PatchEmbedding(nn.Module):
    """Eqs. (6)-(8): P x P patches (a conv of kernel and stride P), flattened, plus a learned position
    embedding. x (B, C, H, W) -> (B, N, d)."""

    def __init__(self, in_channels: int, config: TsfmicroConfig):
        super().__init__()
        patch = config.input_size // config.grid
        self.proj = nn.Conv2d(in_channels, config.d_model, patch, stride=patch)
        self.position = nn.Parameter(torch.zeros(1, config.grid**2, config.d_model))
        nn.init.trunc_normal_(self.position, std=0.02)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, H, W)
        return self.proj(x).flatten(2).transpose(1, 2) + self.position  # (B, d, g, g) -> (B, N, d)


class SpatialBranch(nn.Module):
    """Section 3.2's shallow transformer: ``spatial_layers`` pre-norm blocks, then a LayerNorm.
    tokens (B, N, d) -> (B, N, d)."""

    def __init__(self, config: TsfmicroConfig):
        super().__init__()
        d = config.d_model
        layer = nn.TransformerEncoderLayer(d, config.spatial_heads, d * config.feedforward_mult,
                                           config.dropout, batch_first=True, norm_first=True, activation="gelu")
        self.blocks = nn.TransformerEncoder(layer, config.spatial_layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(d)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(self.blocks(x))  # (B, N, d)


class Tsfmicro(nn.Module):
    """``forward(difference, onset)`` returns logits (B, n_classes); ``branches`` returns the features of
    each branch and the fused tokens (the wiring of ``config.fusion``)."""

    def __init__(self, config: TsfmicroConfig, n_classes: int, in_channels: int = 1,
                 spatial_channels: int | None = None):
        """``in_channels``: channels of the difference frame; ``spatial_channels``: of the onset frame
        (default the same; they differ where a store substitutes an input, stag_model.registry)."""
        super().__init__()
        self.config = config
        d, g = config.d_model, config.grid
        # temporal branch over the difference frame, spatial branch over the onset frame
        self.stem = ConvStem(in_channels, config) if config.temporal_branch else None
        self.retention = RetentionStack(d, config.retention) if config.temporal_branch else None
        self.patches = PatchEmbedding(spatial_channels or in_channels, config) if config.spatial_branch else None
        self.spatial = SpatialBranch(config) if config.spatial_branch else None
        self.grid = g
        self.head = nn.Sequential(nn.Linear(d, config.head_width), nn.LayerNorm(config.head_width), nn.SiLU())
        self.classifier = nn.Sequential(nn.Dropout(config.dropout), nn.Linear(config.head_width, n_classes))

    def _fit(self, x: torch.Tensor) -> torch.Tensor:
        size = self.config.input_size
        return x if x.shape[-2:] == (size, size) else F.interpolate(x, size=(size, size), mode="area")

    def branches(self, difference: torch.Tensor | None, onset: torch.Tensor | None) -> dict[str, torch.Tensor]:
        """``temporal`` (B, N, d): output of the retention stack; ``spatial`` (B, N, d): output of the
        transformer blocks; ``fused`` (B, N, d): what the head reads. A branch that is off is absent, and
        its input may be None."""
        R = lambda t: self.retention(t, self.grid)  # noqa: E731  (B, N, d) -> (B, N, d)
        out: dict[str, torch.Tensor] = {}
        if self.stem is None:
            out["spatial"] = out["fused"] = self.spatial(self.patches(self._fit(onset)))
            return out
        stem = self.stem(self._fit(difference))  # (B, N, d)
        if self.patches is None:
            out["temporal"] = out["fused"] = R(stem)
            return out
        patches = self.patches(self._fit(onset))  # (B, N, d)
        fusion = self.config.fusion
        if fusion == "early":
            out["temporal"] = R(stem + patches)
            out["spatial"] = out["fused"] = self.spatial(out["temporal"])
        elif fusion == "t_to_s":
            out["temporal"] = R(stem)
            out["spatial"] = out["fused"] = self.spatial(out["temporal"] + patches)
        elif fusion == "s_to_t":
            out["spatial"] = self.spatial(patches)
            out["temporal"] = out["fused"] = R(out["spatial"] + stem)
        else:  # late, eq. (9)
            out["temporal"], out["spatial"] = R(stem), self.spatial(patches)
            out["fused"] = out["temporal"] + out["spatial"]
        return out

    def forward(self, difference: torch.Tensor | None = None, onset: torch.Tensor | None = None) -> torch.Tensor:
        """difference (B, C, H, W), onset (B, C', H, W) -> logits (B, n_classes); the input of a branch
        that is off may be None."""
        fused = self.branches(difference, onset)["fused"]  # (B, N, d)
        pooled = self.head(fused).mean(1)  # eqs. (10)-(12): FC, norm, swish per token, mean over N -> (B, w)
        return self.classifier(pooled)  # (B, n_classes)
