"""Training-time augmentation of the motion fields that keeps flow semantics.

`shift_fields` translates each sample's full flow field and strain map by a
whole number of pixels, as a face-alignment error of that size would: the
vectors themselves do not change, only where they sit. The border the shift
uncovers repeats the edge values. The ROI inputs (patches, statistics) stay
as they are: they come from landmarks, not from the field's frame.

`flip_horizontally` mirrors samples: the vectors change with the field (u
negates, left and right ROIs, edges and AUs swap); appearance images (intensities)
are mirrored only. `shift_fields` moves images by the same shift at their scale. The trainer flips at
random while training and averages each test sample with its mirror image.
"""
from __future__ import annotations

import dataclasses

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
    flat = x.reshape(B, -1, H, W)  # (B, P, H, W): replicate padding wants 4-D input
    padded = F.pad(flat, (pad, pad, pad, pad), mode="replicate")  # (B, P, H + 2p, W + 2p)
    shifts = shifts.to(x.device)
    rows = pad - shifts[:, 0:1] + torch.arange(H, device=x.device)  # (B, H) source row of each output row
    cols = pad - shifts[:, 1:2] + torch.arange(W, device=x.device)  # (B, W)
    samples = torch.arange(B, device=x.device)[:, None, None, None]
    planes = torch.arange(flat.shape[1], device=x.device)[None, :, None, None]
    out = padded[samples, planes, rows[:, None, :, None], cols[:, None, None, :]]  # (B, P, H, W)
    return out.reshape(B, *lead, H, W)


def shift_fields(b: StagBatch, shifts: torch.Tensor) -> StagBatch:
    """The batch with its flow (B, K, 2, H, W) and strain (B, K, H, W) shifted per sample, and its images
    (B, C, S, S) by the same shift scaled to their side (S / W, rounded): the same displacement of the face."""
    moved = dict(flow=shift_maps(b.flow, shifts), strain=shift_maps(b.strain, shifts))
    if b.images:
        moved["images"] = {name: shift_maps(image, torch.round(shifts.float() * image.shape[-1] / b.flow.shape[-1])
                                            .long()) for name, image in b.images.items()}
    return dataclasses.replace(b, **moved)


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
    images = {name: torch.where(which.view(-1, 1, 1, 1), image.flip(-1), image) for name, image in b.images.items()}
    return StagBatch(**{**vars(b), **out, "images": images})
