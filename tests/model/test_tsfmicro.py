"""TSFmicro: shapes, the wiring of each fusion variant (which input reaches which
branch), the branch ablations, and a short fit on synthetic data."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from schemas.model_config import RetentionConfig, TsfmicroConfig
from stag_model.tsfmicro import Tsfmicro

N_CLASSES = 3
FUSIONS = ("early", "t_to_s", "s_to_t", "late")
FIT_LEARNING_RATE = 1e-2  # the tiny test model learns where the motion is in ~30 steps at this rate
SMALL = dict(d_model=16, retention=RetentionConfig(heads=2, layers=1), spatial_heads=2, head_width=16)


def _model(seed: int = 0, **settings) -> Tsfmicro:
    torch.manual_seed(seed)
    return Tsfmicro(TsfmicroConfig(**{**SMALL, **settings}), N_CLASSES).eval()


def _inputs(batch: int = 2, side: int = 28, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(batch, 1, side, side, generator=g), torch.randn(batch, 1, side, side, generator=g)


@pytest.mark.parametrize("fusion", FUSIONS)
@pytest.mark.parametrize("side, input_size, grid", [(28, 28, 14), (64, 64, 16), (64, 28, 7)])
def test_logits_have_one_row_per_sample_for_every_fusion(fusion, side, input_size, grid):
    model = _model(fusion=fusion, input_size=input_size, grid=grid)
    difference, onset = _inputs(batch=3, side=side)
    logits = model(difference, onset)
    assert logits.shape == (3, N_CLASSES) and torch.isfinite(logits).all()
    features = model.branches(difference, onset)
    assert {k: v.shape for k, v in features.items()} == {k: (3, grid * grid, 16) for k in ("temporal", "spatial", "fused")}


# which branch's features change when one input changes: (difference -> ..., onset -> ...)
WIRING = {
    "late": ({"temporal"}, {"spatial"}),
    "t_to_s": ({"temporal", "spatial"}, {"spatial"}),
    "s_to_t": ({"temporal"}, {"temporal", "spatial"}),
    "early": ({"temporal", "spatial"}, {"temporal", "spatial"}),
}


def _changed(model: Tsfmicro, difference: torch.Tensor, onset: torch.Tensor, which: str) -> set[str]:
    before = model.branches(difference, onset)
    noise = torch.randn_like(difference)
    after = model.branches(difference + noise, onset) if which == "difference" else model.branches(difference, onset + noise)
    return {k for k in before if not torch.allclose(before[k], after[k], atol=1e-6)}


@pytest.mark.parametrize("fusion", FUSIONS)
def test_each_fusion_wires_the_branches_it_claims(fusion):
    model = _model(fusion=fusion)
    difference, onset = _inputs()
    from_difference, from_onset = WIRING[fusion]
    assert _changed(model, difference, onset, "difference") == from_difference | {"fused"}
    assert _changed(model, difference, onset, "onset") == from_onset | {"fused"}
    zeroed = model(torch.zeros_like(difference), onset), model(difference, torch.zeros_like(onset))
    assert all(not torch.allclose(z, model(difference, onset), atol=1e-6) for z in zeroed)


def test_late_fusion_is_the_sum_of_the_two_branches():
    model = _model(fusion="late")
    features = model.branches(*_inputs())
    torch.testing.assert_close(features["fused"], features["temporal"] + features["spatial"])


def test_every_fusion_has_the_same_parameters():
    counts = {fusion: sum(p.numel() for p in _model(fusion=fusion).parameters()) for fusion in FUSIONS}
    assert len(set(counts.values())) == 1


@pytest.mark.parametrize("off, blind_to", [("temporal_branch", "difference"), ("spatial_branch", "onset")])
def test_a_branch_switched_off_is_gone_and_its_input_ignored(off, blind_to):
    model = _model(**{off: False})
    difference, onset = _inputs()
    kept = "spatial" if off == "temporal_branch" else "temporal"
    assert set(model.branches(difference, onset)) == {kept, "fused"}
    assert _changed(model, difference, onset, blind_to) == set()
    assert _changed(model, difference, onset, "onset" if blind_to == "difference" else "difference") == {kept, "fused"}
    gone = ("stem", "retention") if off == "temporal_branch" else ("patches", "spatial")
    assert all(getattr(model, name) is None for name in gone)
    with pytest.raises(ValueError, match="both off"):
        TsfmicroConfig(temporal_branch=False, spatial_branch=False)


def test_manhattan_retention_runs_on_the_token_grid():
    model = _model(retention=RetentionConfig(heads=2, layers=1, decay="manhattan"))
    assert model(*_inputs()).shape == (2, N_CLASSES)


def test_config_refuses_a_grid_the_stem_cannot_reach():
    with pytest.raises(ValueError, match="power of 2"):
        TsfmicroConfig(input_size=28, grid=10)


def test_a_short_fit_on_synthetic_motion_lowers_the_loss():
    """Class c moves a blob in quadrant c of the difference frame; onsets are noise faces."""
    g = torch.Generator().manual_seed(0)
    labels = torch.arange(24) % N_CLASSES
    difference = 0.1 * torch.randn(24, 1, 28, 28, generator=g)
    for i, c in enumerate(labels.tolist()):
        row, col = divmod(c, 2)
        difference[i, 0, row * 14 + 3:row * 14 + 11, col * 14 + 3:col * 14 + 11] += 1.0
    onset = torch.randn(24, 1, 28, 28, generator=g)
    model = _model(dropout=0.0).train()
    optimiser = torch.optim.AdamW(model.parameters(), lr=FIT_LEARNING_RATE)
    losses = []
    for _ in range(30):
        loss = F.cross_entropy(model(difference, onset), labels)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]
