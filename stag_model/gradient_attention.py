"""The Gradient Attention block of MEGANet (MESTI-MEGANet, arXiv 2509.00056).

The paper says only that the block "enhances the extraction of fine-grained
motion features"; its design is not published. Ours: micro-expressions show as
faint edges and ridges (wrinkles, brow and lip contours that move), so the
block gates each feature map by a learned function of that map's own spatial
gradient magnitude. For features x (B, C, H, W):

    g_x = S_x * x_c,  g_y = S_y * x_c            per channel c; Sobel kernels / 8
                                                 (the derivative per pixel), edges
                                                 padded by replication
    M_c = sqrt(g_x^2 + g_y^2 + eps)               (B, C, H, W) gradient magnitude
    A = sigmoid(BN(W_pw * (W_dw * M)))            depthwise k x k conv, then a 1 x 1
                                                 conv across channels: (B, C, H, W)
    y = x * (1 + A)                               features where gradients are strong
                                                 are amplified up to 2x; none is cut

Properties the tests check: A does not move under a constant offset of x
(Sobel kernels sum to 0 and replication padding keeps a constant constant), so
y(x + c) = y(x) + c (1 + A(x)); A changes when the gradients of x change. The
residual form (1 + A) keeps the block an identity-plus-gain, so switching it
off (MeganetConfig.gradient_attention) leaves the same network without it.
Parameters: C k^2 + C^2 + 2C (with C channels, k = attention_kernel).
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

SOBEL_X = ((-1.0, 0.0, 1.0), (-2.0, 0.0, 2.0), (-1.0, 0.0, 1.0))
SOBEL_NORM = 8.0  # sum of |weights| on one side: the Sobel response of a unit ramp is 8
SOBEL_PAD = 1  # a 3 x 3 kernel needs one pixel on each side


def gradient_magnitude(x: torch.Tensor, eps: float) -> torch.Tensor:
    """Per-channel Sobel gradient magnitude sqrt(g_x^2 + g_y^2 + eps): x (B, C, H, W) -> (B, C, H, W)."""
    C = x.shape[1]
    sobel_x = torch.tensor(SOBEL_X, dtype=x.dtype, device=x.device) / SOBEL_NORM  # (3, 3) d/dcol
    kernels = torch.stack([sobel_x, sobel_x.T])[:, None].repeat(C, 1, 1, 1)  # (2C, 1, 3, 3): per channel x, y
    padded = F.pad(x, (SOBEL_PAD,) * 4, mode="replicate")  # (B, C, H + 2, W + 2)
    g = F.conv2d(padded, kernels, groups=C)  # (B, 2C, H, W): channel c -> (g_x, g_y) at 2c, 2c + 1
    g = g.view(x.shape[0], C, 2, *x.shape[-2:])  # (B, C, 2, H, W)
    return (g.pow(2).sum(2) + eps).sqrt()  # (B, C, H, W)


class GradientAttention(nn.Module):
    """y = x (1 + A(x)) with A from the gradient magnitude of x (module docstring).
    x (B, C, H, W) -> (B, C, H, W); ``attention(x)`` returns A (B, C, H, W) in (0, 1)."""

    def __init__(self, channels: int, kernel: int, eps: float):
        super().__init__()
        if kernel % 2 == 0:
            raise ValueError(f"attention kernel {kernel} must be odd ('same' padding)")
        self.eps = eps
        self.depthwise = nn.Conv2d(channels, channels, kernel, padding=kernel // 2, groups=channels, bias=False)
        self.pointwise = nn.Conv2d(channels, channels, 1, bias=False)
        self.norm = nn.BatchNorm2d(channels)

    def attention(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, H, W)
        magnitude = gradient_magnitude(x, self.eps)  # (B, C, H, W)
        return torch.sigmoid(self.norm(self.pointwise(self.depthwise(magnitude))))  # (B, C, H, W)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * (1.0 + self.attention(x))  # (B, C, H, W)
