"""Shift augmentation: whole-pixel translation of the motion fields."""
from __future__ import annotations

import dataclasses

import torch

from stag_model.augment import random_shifts, shift_fields, shift_maps


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
