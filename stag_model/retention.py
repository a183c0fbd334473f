"""Multi-scale retention (RetNet: Sun et al. 2023, "Retentive Network: A Successor
to Transformer for Large Language Models"), the layer of TSFmicro's temporal branch.

Shapes: B batch, N tokens, d = d_model, h heads of width k = d / h.
For head h with decay gamma_h = 1 - 2^(-offset - h) (RetNet: offset 5):

    Q = rot(X W_Q),   K = rot(X W_K) / sqrt(k),   V = X W_V             (B, h, N, k)

where rot turns each pair of channels (2j, 2j + 1) of token n by the angle
n theta_j, theta_j = base^(-2j / k) (the e^{i n theta} of TSFmicro eq. 2).

Parallel form (RetNet eq. 5):

    Retention(X) = (Q K^T * D) V,     D_nm = gamma^(n - m) if n >= m else 0           (causal)

Recurrent form (RetNet eq. 4), the same numbers token by token:

    S_n = gamma S_{n-1} + K_n^T V_n   (k, k),     Retention(X)_n = Q_n S_n

so o_n = sum_{m <= n} gamma^(n - m) (Q_n K_m^T) V_m (TSFmicro eq. 2). The
``manhattan`` decay (RMT, Fan et al. 2024) is two-dimensional over a g x g token
grid, D_nm = gamma^(|row_n - row_m| + |col_n - col_m|), and has no recurrent form.

Multi-scale retention (RetNet eq. 8):

    Y = GroupNorm_h(concat_h Retention_h(X))      (per token, one group per head)
    MSR(X) = (swish(X W_G) * Y) W_O

A block: X' = X + MSR(LN(X)); out = X' + FFN(LN(X')), FFN = Linear-GELU-Linear.
RetNet's extra scalings of D and of Q K^T are left out: they scale each head of
each token by one number, which the group norm removes (up to its eps).
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from schemas.model_config import RetentionConfig


def decay_rates(heads: int, offset: float) -> torch.Tensor:
    """(h,) float64: gamma_h = 1 - 2^(-offset - h)."""
    return 1.0 - 2.0 ** (-offset - torch.arange(heads, dtype=torch.float64))


def rotate(x: torch.Tensor, positions: torch.Tensor, base: float) -> torch.Tensor:
    """Turn channel pairs (2j, 2j+1) of x (..., N, k) by positions (N,) x theta_j, theta_j = base^(-2j/k)."""
    k = x.shape[-1]
    precise = torch.promote_types(x.dtype, torch.float32)  # angles up to N rad need more than 16-bit floats
    theta = base ** (-torch.arange(0, k, 2, device=x.device, dtype=precise) / k)  # (k/2,)
    angle = positions.to(precise)[:, None] * theta[None]  # (N, k/2)
    cos, sin = angle.cos().to(x.dtype), angle.sin().to(x.dtype)
    even, odd = x[..., 0::2], x[..., 1::2]  # (..., N, k/2)
    turned = torch.stack([even * cos - odd * sin, even * sin + odd * cos], -1)  # (..., N, k/2, 2)
    return turned.flatten(-2)  # (..., N, k)


def decay_matrix(gamma: torch.Tensor, n: int, decay: str, grid: int | None = None) -> torch.Tensor:
    """(h, N, N) D for each head's gamma (h,): causal over N tokens, or manhattan over a grid x grid of them."""
    index = torch.arange(n, device=gamma.device)
    if decay == "causal":
        distance = (index[:, None] - index[None, :]).to(gamma.dtype)  # (N, N) n - m
        allowed = distance >= 0
    elif decay == "manhattan":
        if grid is None or grid * grid != n:
            raise ValueError(f"manhattan decay needs the token grid side: {n} tokens is not grid {grid} squared")
        row, col = index // grid, index % grid  # (N,)
        distance = ((row[:, None] - row[None]).abs() + (col[:, None] - col[None]).abs()).to(gamma.dtype)  # (N, N)
        allowed = torch.ones_like(distance, dtype=torch.bool)
    else:
        raise ValueError(f"unknown retention decay {decay!r}; choose causal or manhattan")
    powers = gamma.log()[:, None, None] * distance.clamp(min=0)[None]  # (h, N, N) log gamma^distance
    return torch.where(allowed[None], powers.exp(), torch.zeros_like(powers))


class MultiScaleRetention(nn.Module):
    """MSR over tokens x (B, N, d) -> (B, N, d) (module docstring). ``forward`` is the parallel form;
    ``recurrent`` (causal decay only) computes the same token by token."""

    def __init__(self, d: int, config: RetentionConfig):
        super().__init__()
        if d % config.heads or (d // config.heads) % 2:
            raise ValueError(f"d_model {d} must split into {config.heads} heads of even width (rotation pairs)")
        self.config = config
        self.heads, self.head_dim = config.heads, d // config.heads
        self.q, self.k, self.v = (nn.Linear(d, d, bias=False) for _ in range(3))
        self.gate = nn.Linear(d, d, bias=False)
        self.out = nn.Linear(d, d, bias=False)
        self.norm = nn.GroupNorm(config.heads, d, eps=config.norm_eps)
        self.register_buffer("gamma", decay_rates(config.heads, config.decay_offset), persistent=False)

    def _heads(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """q, k, v (B, h, N, k) of x (B, N, d), rotated and scaled."""
        B, N, _ = x.shape
        split = lambda t: t.view(B, N, self.heads, self.head_dim).transpose(1, 2)  # noqa: E731  (B, h, N, k)
        q, k, v = split(self.q(x)), split(self.k(x)), split(self.v(x))
        if self.config.rotation:
            positions = torch.arange(N, device=x.device)
            q, k = rotate(q, positions, self.config.rotation_base), rotate(k, positions, self.config.rotation_base)
        return q, k / math.sqrt(self.head_dim), v

    def _output(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Group norm per head and token, swish gate, output projection: y (B, h, N, k) -> (B, N, d)."""
        B, N, d = x.shape
        y = y.transpose(1, 2).reshape(B * N, d)  # (BN, d): heads side by side, one group each
        y = self.norm(y).view(B, N, d)  # (B, N, d)
        return self.out(F.silu(self.gate(x)) * y)

    def forward(self, x: torch.Tensor, grid: int | None = None) -> torch.Tensor:  # x (B, N, d)
        q, k, v = self._heads(x)  # (B, h, N, k)
        D = decay_matrix(self.gamma.to(x.dtype), x.shape[1], self.config.decay, grid)  # (h, N, N)
        scores = (q @ k.transpose(-1, -2)) * D[None]  # (B, h, N, N)
        return self._output(x, scores @ v)  # (B, N, d)

    def recurrent(self, x: torch.Tensor) -> torch.Tensor:  # x (B, N, d)
        if self.config.decay != "causal":
            raise ValueError(f"retention decay {self.config.decay!r} has no recurrent form; only causal has")
        q, k, v = self._heads(x)  # (B, h, N, k)
        gamma = self.gamma.to(x.dtype)[None, :, None, None]  # (1, h, 1, 1)
        state = torch.zeros(x.shape[0], self.heads, self.head_dim, self.head_dim, dtype=x.dtype, device=x.device)
        outputs = []
        for n in range(x.shape[1]):
            state = gamma * state + k[:, :, n, :, None] * v[:, :, n, None, :]  # (B, h, k, k): + K_n^T V_n
            outputs.append(q[:, :, n, None, :] @ state)  # (B, h, 1, k): Q_n S_n
        return self._output(x, torch.cat(outputs, 2))  # (B, N, d)


class RetentionBlock(nn.Module):
    """X' = X + MSR(LN(X)); out = X' + FFN(LN(X')). x (B, N, d) -> (B, N, d)."""

    def __init__(self, d: int, config: RetentionConfig):
        super().__init__()
        self.norm1, self.norm2 = nn.LayerNorm(d, eps=config.norm_eps), nn.LayerNorm(d, eps=config.norm_eps)
        self.retention = MultiScaleRetention(d, config)
        width = d * config.feedforward_mult
        self.ffn = nn.Sequential(nn.Linear(d, width), nn.GELU(), nn.Dropout(config.dropout), nn.Linear(width, d))
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, x: torch.Tensor, grid: int | None = None, recurrent: bool = False) -> torch.Tensor:
        h = self.norm1(x)
        x = x + self.dropout(self.retention.recurrent(h) if recurrent else self.retention(h, grid))  # (B, N, d)
        return x + self.dropout(self.ffn(self.norm2(x)))  # (B, N, d)


class RetentionStack(nn.Module):
    """``config.layers`` retention blocks. x (B, N, d) -> (B, N, d); ``grid`` for the manhattan decay."""

    def __init__(self, d: int, config: RetentionConfig):
        super().__init__()
        self.blocks = nn.ModuleList(RetentionBlock(d, config) for _ in range(config.layers))

    def forward(self, x: torch.Tensor, grid: int | None = None, recurrent: bool = False) -> torch.Tensor:
        for block in self.blocks:
            x = block(x, grid, recurrent)
        return x
