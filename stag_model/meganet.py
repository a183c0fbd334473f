"""MEGANet (MESTI-MEGANet: Nguyen, Khuong, Le and Ngo, arXiv 2509.00056), in the
same framework as STAG.

The paper's abstract, and where it lives here:

- "MESTI ... transforms a video sequence into a single image": made at ingest
  (stag_features.extract.appearance; our apex-centred rank pooling, the exact
  weights being unpublished). The paper compares it with the apex frame, the
  onset-apex optical flow and the dynamic image: ``MeganetConfig.input`` names
  which one the model reads; the model itself takes any (B, C, H, W) image.
- "MEGANet, which incorporates a novel Gradient Attention block to enhance the
  extraction of fine-grained motion features": a small CNN whose every stage
  ends in a `GradientAttention` block (stag_model.gradient_attention; its design
  is ours). ``gradient_attention`` off removes the blocks and nothing else,
  for the ablation the issue asks for.

The backbone is not published either (the paper's other experiments use VGG19,
ResNet50 and EfficientNet-B0 on a few hundred clips); ours is small enough for
28-64 px inputs on a CPU:

    stage s: [conv 3 x 3 -> BN -> ReLU] x convs_per_stage -> GradientAttention -> max-pool 2
    global average pool -> dropout -> linear

Defaults (stages 16, 32, 64; one conv each; 28 px input; 1 channel; 5 classes):
30,341 parameters with the blocks, 23,733 without; on one CPU thread a batch of 32
trains in about 0.03 s at 28 px (0.14 s at 64 px).

Shapes: B batch, C input channels, H W input side, c_s stage widths.
Input an image (B, C, H, W); output logits (B, n_classes).
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from schemas.model_config import MeganetConfig
from stag_model.gradient_attention import GradientAttention

CONV_KERNEL = 3
POOL = 2  # each stage halves the side


class ConvStage(nn.Module):
    """[conv -> BN -> ReLU] x n, the Gradient Attention block (or none), max-pool.
    x (B, c_in, H, W) -> (B, c_out, H / 2, W / 2)."""

    def __init__(self, in_channels: int, out_channels: int, config: MeganetConfig):
        super().__init__()
        layers: list[nn.Module] = []
        for i in range(config.convs_per_stage):
            layers += [nn.Conv2d(in_channels if i == 0 else out_channels, out_channels, CONV_KERNEL,
                                 padding=CONV_KERNEL // 2, bias=False),
                       nn.BatchNorm2d(out_channels), nn.ReLU()]
        self.convs = nn.Sequential(*layers)
        self.attention = (GradientAttention(out_channels, config.attention_kernel, config.gradient_eps)
                          if config.gradient_attention else None)
        self.pool = nn.MaxPool2d(POOL)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.convs(x)  # (B, c_out, H, W)
        if self.attention is not None:
            x = self.attention(x)  # (B, c_out, H, W)
        return self.pool(x)  # (B, c_out, H / 2, W / 2)


class Meganet(nn.Module):
    """``forward(image)`` returns logits (B, n_classes); ``attention_maps(image)`` the Gradient Attention
    maps of each stage (for figures)."""

    def __init__(self, config: MeganetConfig, n_classes: int, in_channels: int = 1):
        super().__init__()
        self.config = config
        widths = (in_channels, *config.stage_channels)
        self.stages = nn.ModuleList(ConvStage(a, b, config) for a, b in zip(widths[:-1], widths[1:]))
        self.classifier = nn.Sequential(nn.Dropout(config.dropout), nn.Linear(widths[-1], n_classes))

    def _fit(self, x: torch.Tensor) -> torch.Tensor:
        size = self.config.input_size
        return x if x.shape[-2:] == (size, size) else F.interpolate(x, size=(size, size), mode="area")

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        """image (B, C, H, W) -> logits (B, n_classes)."""
        x = self._fit(image)  # (B, C, s, s)
        for stage in self.stages:
            x = stage(x)  # (B, c_s, s / 2^(s+1), ...)
        return self.classifier(x.mean((-2, -1)))  # global average pool (B, c_last) -> (B, n_classes)

    @torch.no_grad()
    def attention_maps(self, image: torch.Tensor) -> list[torch.Tensor]:
        """A (B, c_s, H_s, W_s) of each stage's Gradient Attention block, in (0, 1); empty when switched off."""
        maps = []
        x = self._fit(image)
        for stage in self.stages:
            features = stage.convs(x)  # (B, c_s, H_s, W_s)
            if stage.attention is not None:
                maps.append(stage.attention.attention(features))
            x = stage(x)
        return maps
