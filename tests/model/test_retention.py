"""Multi-scale retention: the parallel and recurrent forms agree, the decay is RetNet's,
causal retention looks only back, manhattan retention is two-dimensional."""
from __future__ import annotations

import pytest
import torch

from schemas.model_config import RetentionConfig
from stag_model.retention import MultiScaleRetention, RetentionStack, decay_matrix, decay_rates, rotate

D_MODEL, TOKENS = 16, 7


def _tokens(batch: int = 2, n: int = TOKENS, seed: int = 0) -> torch.Tensor:
    return torch.randn(batch, n, D_MODEL, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def test_decay_rates_are_retnets():
    gamma = decay_rates(4, 5.0)
    torch.testing.assert_close(gamma, torch.tensor([1 - 1 / 32, 1 - 1 / 64, 1 - 1 / 128, 1 - 1 / 256],
                                                   dtype=torch.float64))
    D = decay_matrix(gamma, 5, "causal")  # (h, N, N)
    assert D.shape == (4, 5, 5)
    assert torch.isclose(D[0, 4, 1], gamma[0] ** 3) and D[0, 1, 4] == 0 and (D.diagonal(dim1=1, dim2=2) == 1).all()


@pytest.mark.parametrize("rotation", [True, False])
def test_parallel_and_recurrent_forms_agree(rotation):
    torch.manual_seed(0)
    config = RetentionConfig(heads=2, rotation=rotation, dropout=0.0)
    msr = MultiScaleRetention(D_MODEL, config).double()
    x = _tokens()
    torch.testing.assert_close(msr(x), msr.recurrent(x), rtol=1e-10, atol=1e-10)
    stack = RetentionStack(D_MODEL, config).double().eval()
    torch.testing.assert_close(stack(x), stack(x, recurrent=True), rtol=1e-10, atol=1e-10)


def test_parallel_form_is_equation_two_of_tsfmicro():
    """o_n = sum_{m <= n} gamma^(n-m) (Q_n K_m^T) V_m for one head, before the norm and the gate."""
    torch.manual_seed(1)
    msr = MultiScaleRetention(D_MODEL, RetentionConfig(heads=1)).double()
    x = _tokens(batch=1)
    q, k, v = (t[0, 0] for t in msr._heads(x))  # (N, k)
    gamma = msr.gamma[0]
    expected = torch.stack([
        sum(gamma ** (n - m) * (q[n] @ k[m]) * v[m] for m in range(n + 1)) for n in range(TOKENS)
    ])
    D = decay_matrix(msr.gamma, TOKENS, "causal")[0]
    torch.testing.assert_close(((q @ k.T) * D) @ v, expected)


def test_causal_retention_looks_only_back():
    torch.manual_seed(2)
    msr = MultiScaleRetention(D_MODEL, RetentionConfig(heads=2)).double()
    x = _tokens()
    later = x.clone()
    later[:, 4:] += 1.0
    changed = (msr(x) - msr(later)).abs().amax((0, 2))  # (N,)
    assert (changed[:4] == 0).all() and (changed[4:] > 1e-3).all()


def test_manhattan_decay_is_two_dimensional_and_has_no_recurrent_form():
    gamma = decay_rates(2, 5.0)
    D = decay_matrix(gamma, 9, "manhattan", grid=3)  # tokens of a 3 x 3 grid
    torch.testing.assert_close(D, D.transpose(1, 2))
    assert torch.isclose(D[0, 0, 8], gamma[0] ** 4) and torch.isclose(D[0, 0, 3], gamma[0])  # corner to corner, below
    with pytest.raises(ValueError, match="grid"):
        decay_matrix(gamma, 8, "manhattan", grid=3)
    msr = MultiScaleRetention(D_MODEL, RetentionConfig(decay="manhattan"))
    assert msr(_tokens(n=9).float(), grid=3).shape == (2, 9, D_MODEL)
    with pytest.raises(ValueError, match="no recurrent form"):
        msr.recurrent(_tokens(n=9).float())


def test_rotation_keeps_norms_and_depends_on_relative_position_only():
    x, y = torch.randn(2, 1, 8, dtype=torch.float64)
    at = lambda t, n: rotate(t, torch.tensor([n]), 10000.0)  # noqa: E731
    torch.testing.assert_close(at(x, 5).norm(), x.norm())
    torch.testing.assert_close((at(x, 7) * at(y, 3)).sum(), (at(x, 14) * at(y, 10)).sum())
