"""Dual TV-L1 optical flow in torch, batched over pairs, on the CPU or a CUDA GPU.

The algorithm is OpenCV's ``DualTVL1OpticalFlow`` (Zach, Pock, Bischof 2007;
Sanchez, Meinhardt-Llopis, Facciolo 2013), step for step, so that the two
backends of ``stag_features.extract.flow`` agree to float noise. It minimises

    E(u) = sum_x |grad u_1| + |grad u_2| + lambda |rho(u)|,
    rho(u) = I1(x + u0) + grad I1(x + u0) . (u - u0) + gamma u_3 - I0(x)

(``u_3`` only when ``gamma > 0``: an illumination term) by splitting it with an
auxiliary field v and the coupling (u - v)^2 / (2 theta). With g = (I1x, I1y
[, gamma]) the warped gradient, |g|^2 = I1x^2 + I1y^2, lt = lambda theta and
tt = tau / theta, one iteration is

    v   = u + {  lt g              if rho(u) < -lt |g|^2
              { -lt g              if rho(u) >  lt |g|^2
              { -rho(u) g / |g|^2  otherwise (0 where |g|^2 <= float eps)
    u'  = v + theta div p              div: backward differences, p = 0 before the first row / column
    p'  = (p + tt grad u') / (1 + tt |grad u'|)   per flow channel; grad: forward differences, 0 on the
                                                  last row / column
    err = sum_x |u' - u|^2

A pyramid level runs ``warps`` warps; each warp resamples I1 and its centred
gradient at x + u (bicubic, a = -0.75, zero outside the image) and runs up to
``outer_iterations`` blocks of ``inner_iterations`` iterations, each block
after a ``median_filtering`` x ``median_filtering`` median of u_1, u_2
(replicated border); a pair stops its warp once err <= epsilon^2 H_s W_s. The
dual variable p starts at 0 on each level. Levels shrink by ``scale_step``
(bilinear, OpenCV's pixel-centre convention, sizes rounded) while both sides
stay >= 16 px, up to ``scales`` levels; the flow found on a level is resized
bilinearly to the next finer one and divided by ``scale_step``. An initial
flow is shrunk down the same pyramid (times ``scale_step`` per level) and
starts the coarsest level, as in OpenCV; otherwise that level starts at zero.

Batching: the B pairs of a call run in lockstep, each with its own stopping
test (a stopped pair is frozen until its warp ends), so a pair's flow does not
depend on the others in its batch. Images are uint8 (0-255), all the same size.

Shapes: ``first``, ``second`` (B, H, W) uint8; ``initial`` (B, 2, H, W) float32
or None; returns (B, 2, H, W) float32 on the device it ran on, channel 0 = u
(x, right), channel 1 = v (y, down), in px, with ``second[y + v, x + u] ~
first[y, x]``.
"""
from __future__ import annotations

from contextlib import contextmanager
from functools import lru_cache
from typing import Iterator

import numpy as np
import torch
import torch.nn.functional as F

from schemas.motion_config import TVL1Config

CUBIC_A = -0.75  # Keys' cubic convolution parameter, OpenCV's INTER_CUBIC
MIN_LEVEL_SIDE = 16  # OpenCV stops the pyramid before a side drops below this (px)
TINY = 1e-30  # |g|^2 floor: where g = 0, v = u as in OpenCV (which also keeps v = u for 0 < |g|^2 <= 1.2e-7
#              inside the middle band, where this moves v by at most lt |g| < 2e-5 px)
CUDA_CHECK_EVERY = 8  # on CUDA, ask whether any pair still runs every 8 iterations: each ask waits for the GPU


def resolve_device(name: str) -> torch.device:
    """``auto`` -> CUDA when torch sees a GPU, else the CPU; ``cpu`` / ``cuda`` as named."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"tvl1.device is 'cuda' but torch {torch.__version__} sees no CUDA device; "
                         "use device 'auto' or 'cpu', or install a CUDA build of torch")
    if name not in ("cpu", "cuda"):
        raise ValueError(f"tvl1.device must be 'auto', 'cpu' or 'cuda', got {name!r}")
    return torch.device(name)


@contextmanager
def torch_threads(count: int) -> Iterator[None]:
    """torch's intra-op CPU threads set to ``count`` inside the block (0: left as they are), then restored."""
    before = torch.get_num_threads()
    if count > 0:
        torch.set_num_threads(count)
    try:
        yield
    finally:
        if count > 0:
            torch.set_num_threads(before)


def level_sizes(height: int, width: int, config: TVL1Config) -> list[tuple[int, int]]:
    """(H_s, W_s) of each pyramid level, finest first: each ``round(previous * scale_step)``, at most
    ``config.scales`` levels, none with a side under ``MIN_LEVEL_SIDE``."""
    sizes = [(height, width)]
    while len(sizes) < config.scales:
        h, w = (int(round(side * config.scale_step)) for side in sizes[-1])
        if h < MIN_LEVEL_SIDE or w < MIN_LEVEL_SIDE:
            break
        sizes.append((h, w))
    return sizes


def _linear_weights(n_in: int, n_out: int, inv_scale: float, device: torch.device) -> torch.Tensor:
    """(n_out, n_in) bilinear weights along one axis: source position (d + 0.5) / inv_scale - 0.5,
    clamped to the edge pixels (OpenCV ``resize`` with ``INTER_LINEAR``)."""
    d = np.arange(n_out)
    pos = ((d + 0.5) / inv_scale - 0.5).astype(np.float32)
    left = np.floor(pos).astype(np.int64)
    frac = pos - left
    frac[left < 0], left[left < 0] = 0, 0
    frac[left >= n_in - 1], left[left >= n_in - 1] = 0, n_in - 1
    weights = np.zeros((n_out, n_in), np.float32)
    weights[d, left] += 1 - frac
    weights[d, np.minimum(left + 1, n_in - 1)] += frac
    return torch.from_numpy(weights).to(device)


def resize_linear(x: torch.Tensor, size: tuple[int, int], inv_scale: tuple[float, float]) -> torch.Tensor:
    """(..., h, w) -> (..., H, W) bilinear, rows first then columns; ``inv_scale`` = (sy, sx) output
    pixels per input pixel (OpenCV's ``fy``, ``fx``, or the size ratio when a size is given)."""
    wy = _linear_weights(x.shape[-2], size[0], inv_scale[0], x.device)  # (H, h)
    wx = _linear_weights(x.shape[-1], size[1], inv_scale[1], x.device)  # (W, w)
    return torch.matmul(wy, torch.matmul(x, wx.T))


def centred_gradient(image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, 1, H, W) -> d/dx, d/dy as (f(x + 1) - f(x - 1)) / 2 with the edge pixel repeated outside."""
    padded = F.pad(image, (1, 1, 1, 1), mode="replicate")
    dx = 0.5 * (padded[..., 1:-1, 2:] - padded[..., 1:-1, :-2])
    dy = 0.5 * (padded[..., 2:, 1:-1] - padded[..., :-2, 1:-1])
    return dx, dy


def forward_gradient(u: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) -> (B, C, 2, H, W): f(x + 1) - f(x) along x and y, 0 on the last column / row."""
    dx = F.pad(u[..., :, 1:] - u[..., :, :-1], (0, 1))
    dy = F.pad(u[..., 1:, :] - u[..., :-1, :], (0, 0, 0, 1))
    return torch.stack([dx, dy], dim=2)


def divergence(p: torch.Tensor) -> torch.Tensor:
    """(B, C, 2, H, W) -> (B, C, H, W): backward differences of p_x along x plus p_y along y, with
    p = 0 before the first column / row (minus the adjoint of ``forward_gradient``)."""
    px, py = p[:, :, 0], p[:, :, 1]
    return (px - F.pad(px[..., :, :-1], (1, 0))) + (py - F.pad(py[..., :-1, :], (0, 0, 1, 0)))


def _batcher_pairs(n: int) -> list[tuple[int, int]]:
    """Comparators (i, j) of Batcher's odd-even merge sort of n wires (n a power of two): after each,
    wire i holds the smaller value and wire j the larger."""
    pairs, p = [], 1
    while p < n:
        k = p
        while k >= 1:
            for j in range(k % p, n - k, 2 * k):
                pairs += [(i + j, i + j + k) for i in range(min(k, n - j - k))
                          if (i + j) // (2 * p) == (i + j + k) // (2 * p)]
            k //= 2
        p *= 2
    return pairs


@lru_cache(maxsize=None)
def median_network(count: int) -> tuple[tuple[int, int, bool, bool], ...]:
    """A selection network for the median of ``count`` (odd) values: Batcher's sorting network on
    the next power of two (wires from ``count`` on hold +inf), pruned backwards to the comparators the
    middle wire depends on; each is (i, j, min needed, max needed). 5 x 5: 233 min / max operations."""
    n = 1 << (count - 1).bit_length()
    needed, kept = {count // 2}, []
    for i, j in reversed(_batcher_pairs(n)):
        if (i in needed or j in needed) and i < count:
            kept.append((i, j, i in needed, j in needed))
            needed |= {i, j}
    return tuple(reversed(kept))


def median_filter(u: torch.Tensor, size: int) -> torch.Tensor:
    """(B, C, H, W) -> the median of each ``size`` x ``size`` window, edge pixels repeated outside
    (OpenCV ``medianBlur``), by ``median_network`` over the size^2 shifted copies. On the CPU one pair
    at a time, so that the copies stay in cache."""
    if u.device.type == "cpu" and u.shape[0] > 1:
        return torch.cat([median_filter(one, size) for one in u.split(1)])
    h, w = u.shape[-2:]
    r = size // 2
    padded = F.pad(u, (r, r, r, r), mode="replicate")
    wires: list[torch.Tensor | None] = [padded[..., dy:dy + h, dx:dx + w] for dy in range(size) for dx in range(size)]
    wires += [None] * (len(wires) + 1)  # None = +inf
    for i, j, need_min, need_max in median_network(size * size):
        low, high = wires[i], wires[j]
        if high is None:  # min(x, +inf) = x
            continue
        if low is None:
            wires[i], wires[j] = high, None
            continue
        wires[i] = torch.minimum(low, high) if need_min else None
        wires[j] = torch.maximum(low, high) if need_max else None
    return wires[(size * size) // 2].contiguous()


def _cubic_weights(t: torch.Tensor) -> list[torch.Tensor]:
    """Keys cubic convolution weights (a = -0.75, OpenCV's) of the taps at -1, 0, 1, 2 for offsets t in [0, 1)."""
    a, s = CUBIC_A, 1 - t
    w0 = ((a * (t + 1) - 5 * a) * (t + 1) + 8 * a) * (t + 1) - 4 * a
    w1 = ((a + 2) * t - (a + 3)) * t * t + 1
    w2 = ((a + 2) * s - (a + 3)) * s * s + 1
    return [w0, w1, w2, 1 - w0 - w1 - w2]


def warp_bicubic(images: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    """(B, N, H, W) images sampled at (x + u, y + v) of a (B, 2, H, W) flow: bicubic (a = -0.75) over the
    4 x 4 pixels around each point, pixels outside the image count 0 (OpenCV ``remap`` with
    ``INTER_CUBIC`` and a constant border of 0). The point is split into whole pixels and a fraction
    exactly, so a zero flow returns the image itself."""
    b, n, h, w = images.shape
    ys = torch.arange(h, device=images.device, dtype=images.dtype).view(1, h, 1)
    xs = torch.arange(w, device=images.device, dtype=images.dtype).view(1, 1, w)
    px, py = xs + flow[:, 0], ys + flow[:, 1]  # (B, H, W)
    x0, y0 = px.floor(), py.floor()
    wx, wy = _cubic_weights(px - x0), _cubic_weights(py - y0)
    x0, y0 = x0.long() - 1, y0.long() - 1
    flat = images.reshape(b, n, h * w)
    out = torch.zeros_like(images)
    for j in range(4):
        row = y0 + j
        row_ok = (row >= 0) & (row < h)
        for k in range(4):
            col = x0 + k
            inside = row_ok & (col >= 0) & (col < w)  # (B, H, W)
            index = (row.clamp(0, h - 1) * w + col.clamp(0, w - 1)).view(b, 1, h * w).expand(b, n, h * w)
            taps = flat.gather(2, index).view(b, n, h, w)
            out += (wy[j] * wx[k] * inside).unsqueeze(1) * taps
    return out


def _iterate(u: torch.Tensor, p: torch.Tensor, data: list[torch.Tensor], config: TVL1Config,
             stop_below: float, check_every: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The iterations of one warp: (B, C, H, W) flow u and (B, C, 2, H, W) dual p in, both out.

    ``data`` = [rho_c (B, 1, H, W), g (B, C, H, W), |g|^2 (B, 1, H, W)] from the warp. Pairs run in
    lockstep; a pair whose update fell to ``stop_below`` stops (its update that iteration is kept) and
    leaves the working set at the next check (every ``check_every`` iterations and before each median;
    masked until then), so stopped pairs cost nothing."""
    lt, tt, theta = config.lambda_ * config.theta, config.tau / config.theta, config.theta
    u_all, p_all = u.clone(), p.clone()
    live = torch.arange(u.shape[0], device=u.device)  # batch index of each pair in the working set
    active = torch.ones(u.shape[0], dtype=torch.bool, device=u.device)
    step = 0
    for _ in range(config.outer_iterations):
        for inner in range(config.inner_iterations):
            if inner == 0 or step % check_every == 0:  # drop stopped pairs from the working set
                if not bool(active.all()):
                    keep = active
                    u_all[live], p_all[live] = u, p
                    live, u, p, active = live[keep], u[keep], p[keep], active[keep]
                    data = [x[keep] for x in data]
                if len(live) == 0:
                    break
            if inner == 0 and config.median_filtering > 1:
                u = torch.cat([median_filter(u[:, :2], config.median_filtering), u[:, 2:]], dim=1)
            step += 1
            rho_c, g, grad2 = data
            rho = rho_c + (g[:, :1] * u[:, :1] + g[:, 1:2] * u[:, 1:2])
            if g.shape[1] == 3:
                rho = rho + config.gamma * u[:, 2:]
            # v - u = g * clamp(-rho / |g|^2, -lt, lt): the three cases of the thresholding step
            shift = g * (-rho / grad2.clamp_min(TINY)).clamp(-lt, lt)
            u_next = (u + shift) + theta * divergence(p)
            err = ((u_next - u) ** 2).sum(dim=(1, 2, 3))  # (B,)
            du = forward_gradient(u_next)  # (B, C, 2, H, W)
            p_next = (p + tt * du) / (1 + tt * torch.hypot(du[:, :, 0], du[:, :, 1])).unsqueeze(2)
            if check_every == 1:  # the working set holds active pairs only
                u, p = u_next, p_next
            else:  # a pair stopped since the last check keeps its u and p
                u = torch.where(active.view(-1, 1, 1, 1), u_next, u)
                p = torch.where(active.view(-1, 1, 1, 1, 1), p_next, p)
            active = active & (err > stop_below)
        if len(live) == 0:
            break
    u_all[live], p_all[live] = u, p
    return u_all, p_all


def _solve_level(i0: torch.Tensor, i1: torch.Tensor, u: torch.Tensor, config: TVL1Config,
                 check_every: int) -> torch.Tensor:
    """The warps of one pyramid level: (B, 1, H, W) images, (B, C, H, W) flow in -> flow out."""
    b, c, h, w = u.shape
    i1x, i1y = centred_gradient(i1)
    sources = torch.cat([i1, i1x, i1y], dim=1)  # (B, 3, H, W)
    p = u.new_zeros(b, c, 2, h, w)
    for _ in range(config.warps):
        i1w, gx, gy = warp_bicubic(sources, u[:, :2]).split(1, dim=1)  # (B, 1, H, W) each
        rho_c = i1w - gx * u[:, :1] - gy * u[:, 1:2] - i0
        g = torch.cat([gx, gy] + ([torch.full_like(gx, config.gamma)] if c == 3 else []), dim=1)  # (B, C, H, W)
        u, p = _iterate(u, p, [rho_c, g, gx * gx + gy * gy], config, config.epsilon**2 * h * w, check_every)
    return u


def _as_batch(images, name: str, device: torch.device) -> torch.Tensor:
    array = torch.as_tensor(np.asarray(images)) if not isinstance(images, torch.Tensor) else images
    if array.dtype != torch.uint8:
        raise ValueError(f"{name}: expected uint8 images, got {array.dtype}")
    if array.ndim != 3 or min(array.shape[1:]) < 3:
        raise ValueError(f"{name}: expected a (B, H, W) batch of grayscale images (H, W >= 3), got shape "
                         f"{tuple(array.shape)}")
    return array.to(device=device, dtype=torch.float32).unsqueeze(1)  # (B, 1, H, W), 0-255


def tvl1_torch(first, second, config: TVL1Config, initial=None, device: str | torch.device = "cpu",
               check_every: int | None = None) -> torch.Tensor:
    """Dual TV-L1 flow from each ``first[i]`` to ``second[i]`` (the module docstring has the
    equations and shapes), computed on ``device`` ("cpu", "cuda", "auto" or a torch.device).

    ``check_every``: iterations between two looks at which pairs have stopped (default 1 on the CPU,
    ``CUDA_CHECK_EVERY`` on CUDA, where each look waits for the GPU); the flow does not depend on it."""
    if config.median_filtering > 1 and config.median_filtering % 2 == 0:
        raise ValueError(f"tvl1.median_filtering must be odd (or 1 for none), got {config.median_filtering}")
    device = device if isinstance(device, torch.device) else resolve_device(device)
    i0, i1 = _as_batch(first, "first", device), _as_batch(second, "second", device)
    if i0.shape != i1.shape:
        raise ValueError(f"tvl1_torch: first and second differ in shape: {tuple(i0.shape)} vs {tuple(i1.shape)}")
    b, _, height, width = i0.shape
    check_every = check_every or (1 if device.type == "cpu" else CUDA_CHECK_EVERY)
    sizes = level_sizes(height, width, config)
    scale = config.scale_step
    pyramid = [(i0, i1)]
    for size in sizes[1:]:
        pyramid.append(tuple(resize_linear(x, size, (scale, scale)) for x in pyramid[-1]))
    channels = 3 if config.gamma > 0 else 2
    top_h, top_w = sizes[-1]
    if initial is None:
        u = i0.new_zeros(b, channels, top_h, top_w)
    else:
        flow = torch.as_tensor(np.asarray(initial, np.float32) if not isinstance(initial, torch.Tensor) else initial)
        if tuple(flow.shape) != (b, 2, height, width):
            raise ValueError(f"initial flow: expected shape {(b, 2, height, width)}, got {tuple(flow.shape)}")
        flow = flow.to(device=device, dtype=torch.float32)
        for size in sizes[1:]:
            flow = resize_linear(flow, size, (scale, scale)) * scale
        u = torch.cat([flow, flow.new_zeros(b, channels - 2, top_h, top_w)], dim=1)
    for level in range(len(sizes) - 1, -1, -1):
        u = _solve_level(*pyramid[level], u, config, check_every)
        if level > 0:
            (h, w), (finer_h, finer_w) = sizes[level], sizes[level - 1]
            u = resize_linear(u, (finer_h, finer_w), (finer_h / h, finer_w / w))
            u = torch.cat([u[:, :2] * (1 / scale), u[:, 2:]], dim=1)
    return u[:, :2].contiguous()
