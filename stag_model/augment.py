"""Training-time augmentation of the motion fields that keeps flow semantics.

`shift_fields` translates each sample's full flow field and strain map by a
whole number of pixels, as a face-alignment error of that size would: the
vectors themselves do not change, only where they sit. The border the shift
uncovers repeats the edge values. The ROI inputs (patches, statistics) stay
as they are: they come from landmarks, not from the field's frame.

`rotate_fields` turns each sample's flow field and strain map about the
centre by a small angle, as a head roll of that size would: the vectors turn
with the field. Like the shift it runs after normalisation, so vectors turn
about the training fold's mean; that is exact when u and v share one scale.
ROI inputs stay.

`flip_horizontally` mirrors samples: the vectors change with the field (u
negates, left and right ROIs, edges and AUs swap). The trainer flips at
random while training and averages each test sample with its mirror image.
"""
from __future__ import annotations

import dataclasses
import math

import torch
import torch.nn.functional as F

from stag_model.data import FLIP_NEGATED_STATS, GraphSpec
from stag_model.model import StagBatch


def random_shifts(batch_size: int, max_pixels: int, generator: torch.Generator) -> torch.Tensor:
    """(B, 2) long: a (dy, dx) shift per sample, uniform in [-max_pixels, max_pixels]."""
    return torch.randint(-max_pixels, max_pixels + 1, (batch_size, 2), generator=generator)


def shift_maps(x: torch.Tensor, shifts: torch.Tensor) -> torch.Tensor:
    """x (B, ..., H, W) with every map of sample i moved by shifts[i] = (dy, dx):
    out[i, ..., y, x] = x[i, ..., clamp(y - dy), clamp(x - dx)]."""
    B, H, W = x.shape[0], x.shape[-2], x.shape[-1]
    pad = int(shifts.abs().max()) if len(shifts) else 0
    if pad == 0:
        return x
    lead = x.shape[1:-2]
    flat = x.reshape(B, -1, H, W)  # (B, prod(lead), H, W): replicate padding wants 4-D input
    padded = F.pad(flat, (pad, pad, pad, pad), mode="replicate")  # (B, prod(lead), H + 2p, W + 2p)
    out = torch.stack([padded[i, :, pad - dy:pad - dy + H, pad - dx:pad - dx + W]
                       for i, (dy, dx) in enumerate(shifts.tolist())])  # (B, prod(lead), H, W)
    return out.reshape(B, *lead, H, W)


def shift_fields(b: StagBatch, shifts: torch.Tensor) -> StagBatch:
    """The batch with its flow (B, K, 2, H, W) and strain (B, K, H, W) shifted per sample."""
    return dataclasses.replace(b, flow=shift_maps(b.flow, shifts), strain=shift_maps(b.strain, shifts))


def random_angles(batch_size: int, max_degrees: float, generator: torch.Generator) -> torch.Tensor:
    """(B,) radians, uniform in [-max_degrees, max_degrees]."""
    return (torch.rand(batch_size, generator=generator) * 2 - 1) * math.radians(max_degrees)


def rotate_fields(b: StagBatch, angles: torch.Tensor) -> StagBatch:
    """The batch with sample i's flow (B, K, 2, H, W) and strain (B, K, H, W) turned by angles[i] about
    the centre, in (x right, y down) pixel coordinates: the content at p moves to R p and each vector
    (u, v) becomes R (u, v), R = [[cos, -sin], [sin, cos]]. Bilinear, borders repeat the edge."""
    B, K, _, H, W = b.flow.shape
    cos, sin = angles.cos().to(b.flow.dtype), angles.sin().to(b.flow.dtype)
    # output pixel q samples the input at R^-1 q; in affine_grid's normalised coordinates (x / (W/2),
    # y / (H/2)) that is S^-1 R^-1 S with S = diag(W/2, H/2)
    theta = torch.zeros(B, 2, 3, dtype=b.flow.dtype, device=b.flow.device)
    theta[:, 0, 0], theta[:, 0, 1] = cos, sin * H / W
    theta[:, 1, 0], theta[:, 1, 1] = -sin * W / H, cos
    grid = F.affine_grid(theta, [B, 1, H, W], align_corners=False)  # (B, H, W, 2)
    maps = torch.cat([b.flow.reshape(B, K * 2, H, W), b.strain], 1)  # (B, 3K, H, W)
    turned = F.grid_sample(maps, grid, mode="bilinear", padding_mode="border", align_corners=False)
    moved = turned[:, :2 * K].reshape(B, K, 2, H, W)
    u, v = moved[:, :, 0], moved[:, :, 1]  # (B, K, H, W) each
    c, s = cos.view(B, 1, 1, 1), sin.view(B, 1, 1, 1)
    flow = torch.stack([c * u - s * v, s * u + c * v], 2)  # (B, K, 2, H, W)
    return dataclasses.replace(b, flow=flow, strain=turned[:, 2 * K:])


def shift_roi_patches(b: StagBatch, shifts: torch.Tensor) -> StagBatch:
    """The batch with every ROI flow patch (B, K, R, 2, P, P) of sample i shifted by shifts[i]."""
    return dataclasses.replace(b, roi_patches=shift_maps(b.roi_patches, shifts))


def flip_horizontally(b: StagBatch, which: torch.Tensor, graph: GraphSpec) -> StagBatch:
    """Mirror the samples where ``which`` (B,) is True: fields flip along x, u
    (and mean u, cos direction) change sign, left and right ROIs, their edges
    and L/R AUs swap. Applied after normalisation, so signs flip about the
    training fold's mean (0 for flow in px; the best estimate of no-motion for
    per-image normalised flow)."""
    dev = b.flow.device
    roi_m, edge_m, au_m = (torch.as_tensor(a, device=dev) for a in (graph.roi_mirror, graph.edge_mirror, graph.au_mirror))
    flow = b.flow.flip(-1) * torch.tensor([-1.0, 1.0], device=dev).view(1, 1, 2, 1, 1)  # (B, K, 2, H, W)
    patches = b.roi_patches[:, :, roi_m].flip(-1) * torch.tensor([-1.0, 1.0], device=dev).view(1, 1, 1, 2, 1, 1)
    sign = torch.ones(b.roi_stats.shape[-1], device=dev)
    sign[list(FLIP_NEGATED_STATS)] = -1.0
    flipped = dict(flow=flow, strain=b.strain.flip(-1), roi_patches=patches, roi_stats=b.roi_stats[:, :, roi_m] * sign,
                   au_activation=b.au_activation[:, :, au_m], edge_weight=b.edge_weight[:, :, edge_m])
    out = {}
    for name, value in flipped.items():
        original = getattr(b, name)
        mask = which.view(-1, *([1] * (original.dim() - 1)))
        out[name] = torch.where(mask, value.to(original.dtype), original)
    return StagBatch(**{**vars(b), **out})
