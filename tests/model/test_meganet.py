"""MEGANet and its Gradient Attention block: the attention follows the image's
gradients and ignores a constant offset; shapes; the switch removes the blocks
and nothing else; a short fit on synthetic images."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from schemas.model_config import MeganetConfig
from stag_model.gradient_attention import GradientAttention, gradient_magnitude
from stag_model.meganet import Meganet

N_CLASSES = 3
EPS = 1e-6


def _block(channels: int = 4, seed: int = 0) -> GradientAttention:
    torch.manual_seed(seed)
    block = GradientAttention(channels, kernel=3, eps=EPS).double().eval()
    with torch.no_grad():  # a trained-looking norm, so the gate is not flat
        block.norm.running_mean.uniform_(-0.5, 0.5)
        block.norm.weight.uniform_(0.5, 2.0)
    return block


def _features(batch: int = 2, channels: int = 4, side: int = 16, seed: int = 0) -> torch.Tensor:
    return torch.randn(batch, channels, side, side, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def test_gradient_magnitude_is_the_slope_of_a_ramp_and_zero_on_a_constant():
    cols = torch.arange(10, dtype=torch.float64)
    ramp = (0.3 * cols).expand(1, 1, 10, 10)  # slope 0.3 per pixel along columns
    magnitude = gradient_magnitude(ramp, EPS)
    torch.testing.assert_close(magnitude[..., 1:-1], torch.full_like(magnitude[..., 1:-1], (0.09 + EPS) ** 0.5))
    flat = gradient_magnitude(torch.full((1, 2, 6, 6), 3.0, dtype=torch.float64), EPS)
    torch.testing.assert_close(flat, torch.full_like(flat, EPS**0.5))


def test_attention_ignores_a_constant_offset():
    block, x = _block(), _features()
    for offset in (0.5, -3.0, 100.0):
        torch.testing.assert_close(block.attention(x + offset), block.attention(x), rtol=1e-9, atol=1e-9)
        # so the output moves by the offset times the (unchanged) gain, nothing more
        torch.testing.assert_close(block(x + offset), block(x) + offset * (1 + block.attention(x)),
                                   rtol=1e-9, atol=1e-9)


def test_attention_changes_when_the_gradients_change():
    block, x = _block(), _features()
    edge = torch.zeros_like(x)
    edge[..., :, 8:] = 2.0  # a vertical step edge: gradients change near column 8 only
    changed = (block.attention(x + edge) - block.attention(x)).abs().amax((0, 1))  # (H, W)
    assert changed[:, 6:10].min() > 1e-3
    assert not torch.allclose(block(x + edge), block(x) + edge * (1 + block.attention(x)))
    steeper = block.attention(2 * x)  # every gradient doubled
    assert (steeper - block.attention(x)).abs().max() > 1e-2


def test_the_gate_is_a_gain_between_one_and_two():
    block, x = _block(), _features()
    gain = block(x) / x
    assert (gain > 1).all() and (gain < 2).all()


@pytest.mark.parametrize("side, input_size", [(28, 28), (64, 64), (64, 32)])
@pytest.mark.parametrize("channels", [1, 2, 3])
def test_logits_have_one_row_per_sample(side, input_size, channels):
    model = Meganet(MeganetConfig(input_size=input_size), N_CLASSES, in_channels=channels).eval()
    image = torch.randn(3, channels, side, side)
    assert model(image).shape == (3, N_CLASSES)
    maps = model.attention_maps(image)
    assert [m.shape for m in maps] == [(3, c, input_size >> s, input_size >> s) for s, c in enumerate((16, 32, 64))]


def test_switching_gradient_attention_off_removes_the_blocks_and_nothing_else():
    with_blocks = Meganet(MeganetConfig(), N_CLASSES)
    without = Meganet(MeganetConfig(gradient_attention=False), N_CLASSES)
    assert not any(isinstance(m, GradientAttention) for m in without.modules())
    assert sum(isinstance(m, GradientAttention) for m in with_blocks.modules()) == 3
    keys_with, keys_without = set(with_blocks.state_dict()), set(without.state_dict())
    assert keys_without == {k for k in keys_with if ".attention." not in k}
    assert without.attention_maps(torch.randn(1, 1, 64, 64)) == []
    # with the blocks' parameters copied in, the network without them is the one with them minus the gate
    without.load_state_dict({k: v for k, v in with_blocks.state_dict().items() if k in keys_without})
    for stage in with_blocks.stages:
        stage.attention.forward = lambda x: x  # the block as an identity
    image = torch.randn(2, 1, 64, 64)
    torch.testing.assert_close(with_blocks.eval()(image), without.eval()(image))


def test_config_refuses_an_even_attention_kernel():
    with pytest.raises(ValueError, match="odd"):
        MeganetConfig(attention_kernel=4)


@pytest.mark.parametrize("gradient_attention", [True, False])
def test_a_short_fit_on_synthetic_images_lowers_the_loss(gradient_attention):
    """Class c: a faint bar in orientation c (horizontal, vertical, diagonal) on a random face."""
    g = torch.Generator().manual_seed(0)
    labels = torch.arange(24) % N_CLASSES
    images = 0.3 * torch.randn(24, 1, 28, 28, generator=g)
    rows, cols = torch.meshgrid(torch.arange(28), torch.arange(28), indexing="ij")
    bars = [(rows - 14).abs() < 2, (cols - 14).abs() < 2, (rows - cols).abs() < 2]
    for i, c in enumerate(labels.tolist()):
        images[i, 0][bars[c]] += 1.0
    torch.manual_seed(0)
    model = Meganet(MeganetConfig(input_size=28, dropout=0.0, gradient_attention=gradient_attention), N_CLASSES)
    optimiser = torch.optim.AdamW(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(30):
        loss = F.cross_entropy(model(images), labels)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]
