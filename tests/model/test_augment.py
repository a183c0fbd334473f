"""Shift augmentation: whole-pixel translation of the motion fields."""
from __future__ import annotations

import dataclasses
import math

import pytest
import torch

from stag_model.augment import (
    random_angles,
    random_shifts,
    rotate_fields,
    shift_fields,
    shift_maps,
    shift_roi_patches,
)


def test_shift_moves_each_sample_by_its_own_offset_and_repeats_the_border():
    x = torch.arange(2 * 4 * 5, dtype=torch.float32).reshape(2, 1, 4, 5)  # (B, C, H, W)
    out = shift_maps(x, torch.tensor([[1, 0], [0, -2]]))
    # sample 0 moves down one row: row 0 repeats the old row 0, row y holds old row y - 1
    torch.testing.assert_close(out[0, 0, 0], x[0, 0, 0])
    torch.testing.assert_close(out[0, 0, 1:], x[0, 0, :-1])
    # sample 1 moves left two columns: column x holds old column x + 2, the last two repeat the old last column
    torch.testing.assert_close(out[1, 0, :, :3], x[1, 0, :, 2:])
    torch.testing.assert_close(out[1, 0, :, 3:], x[1, 0, :, 4:].expand(-1, 2))


def test_zero_shift_is_the_identity_and_extra_axes_move_together(make_batch):
    b = make_batch(batch=3, frames=2)
    same = shift_fields(b, torch.zeros(3, 2, dtype=torch.long))
    torch.testing.assert_close(same.flow, b.flow)
    moved = shift_fields(b, torch.tensor([[0, 1], [0, 1], [0, 1]]))
    assert moved.flow.shape == b.flow.shape and moved.strain.shape == b.strain.shape
    torch.testing.assert_close(moved.flow[..., 1:], b.flow[..., :-1])  # u and v of every frame move alike
    torch.testing.assert_close(moved.strain[..., 1:], b.strain[..., :-1])
    for f in dataclasses.fields(b):  # the ROI inputs and the graph stay
        if f.name not in ("flow", "strain"):
            assert getattr(moved, f.name) is getattr(b, f.name)


def test_random_shifts_cover_the_range_reproducibly():
    s = random_shifts(4000, 2, torch.Generator().manual_seed(3))
    assert s.shape == (4000, 2) and set(s.unique().tolist()) == {-2, -1, 0, 1, 2}
    torch.testing.assert_close(s, random_shifts(4000, 2, torch.Generator().manual_seed(3)))


def test_roi_patch_shift_moves_only_the_patches(make_batch):
    b = make_batch(batch=2, frames=2)
    moved = shift_roi_patches(b, torch.tensor([[1, 0], [0, 0]]))
    torch.testing.assert_close(moved.roi_patches[0, ..., 1:, :], b.roi_patches[0, ..., :-1, :])  # every ROI, u and v
    torch.testing.assert_close(moved.roi_patches[1], b.roi_patches[1])
    assert moved.flow is b.flow and moved.roi_stats is b.roi_stats


def test_rotation_turns_positions_and_vectors_together(make_batch):
    """A quarter turn in (x right, y down) pixels: a rightward vector right of the centre becomes a
    downward vector below it (28 x 28: the centre is at 13.5, so (row 13, col 20) goes to (20, 14))."""
    b = make_batch(batch=2, frames=1)
    flow, strain = torch.zeros(2, 1, 2, 28, 28), torch.zeros(2, 1, 28, 28)
    flow[:, 0, 0, 13, 20], strain[:, 0, 13, 20] = 1.0, 2.0
    turned = rotate_fields(dataclasses.replace(b, flow=flow, strain=strain), torch.tensor([math.pi / 2, 0.0]))
    torch.testing.assert_close(turned.flow[0, 0, 1, 20, 14], torch.tensor(1.0))  # v = +1 (downward) there
    assert turned.flow[0, 0, 0].abs().max() < 1e-5 and turned.flow[0, 0, 1].abs().sum() == pytest.approx(1.0, abs=1e-5)
    torch.testing.assert_close(turned.strain[0, 0, 20, 14], torch.tensor(2.0))
    torch.testing.assert_close(turned.flow[1], flow[1])  # angle 0: unchanged
    torch.testing.assert_close(turned.strain[1], strain[1])
    assert turned.roi_patches is b.roi_patches and turned.au_activation is b.au_activation


def test_rotation_keeps_a_uniform_field_uniform_and_turns_its_vector(make_batch):
    b = make_batch(batch=1, frames=2)
    flow = torch.zeros(1, 2, 2, 12, 20)
    flow[:, :, 0] = 3.0  # u = 3 everywhere, in a non-square field
    turned = rotate_fields(dataclasses.replace(b, flow=flow, strain=torch.ones(1, 2, 12, 20)), torch.tensor([0.3]))
    torch.testing.assert_close(turned.flow[0, :, 0], torch.full((2, 12, 20), 3 * math.cos(0.3)))
    torch.testing.assert_close(turned.flow[0, :, 1], torch.full((2, 12, 20), 3 * math.sin(0.3)))
    torch.testing.assert_close(turned.strain, torch.ones(1, 2, 12, 20))


def test_random_angles_stay_in_range_reproducibly():
    a = random_angles(4000, 10.0, torch.Generator().manual_seed(5))
    assert a.abs().max() <= math.radians(10.0) and a.min() < -math.radians(9.0) and a.max() > math.radians(9.0)
    torch.testing.assert_close(a, random_angles(4000, 10.0, torch.Generator().manual_seed(5)))
