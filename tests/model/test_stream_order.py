"""The shallow streams' layer order, and STSTNet's MEGC 2019 image input."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from schemas.model_config import ModelConfig, StstnetConfig
from stag_model.baselines import Ststnet, megc2019_image
from stag_model.model import FrameEncoder, ShallowStream


def _stream(order: str) -> ShallowStream:
    torch.manual_seed(0)
    stream = ShallowStream(3, 5, 3, 2, 3, 0.5, order).eval()
    stream.bn.running_mean.uniform_(-1, 1)
    stream.bn.running_var.uniform_(0.5, 2)
    stream.bn.weight.data.uniform_(0.5, 1.5)
    stream.bn.bias.data.uniform_(-1, 1)
    return stream


def test_each_order_computes_its_formula_and_the_two_differ():
    x = torch.randn(4, 3, 28, 28, generator=torch.Generator().manual_seed(1))
    released, current = _stream("conv_relu_bn"), _stream("conv_bn_relu")
    assert released.state_dict().keys() == current.state_dict().keys()  # same parameter names
    with torch.no_grad():
        y = released.conv(x)
        expected_released = F.max_pool2d(released.bn(F.relu(y)), 3, 3, padding=1)
        expected_current = F.max_pool2d(F.relu(current.bn(y)), 3, 3, padding=1)
        torch.testing.assert_close(released(x), expected_released)
        torch.testing.assert_close(current(x), expected_current)
        assert not torch.allclose(released(x), current(x))
        assert (released(x) < 0).any() and (current(x) >= 0).all()  # BN after ReLU can go negative
    with pytest.raises(ValueError, match="conv_relu_bn"):
        ShallowStream(3, 5, 3, 2, 3, 0.5, "bn_conv_relu")


def test_configs_choose_the_order_of_every_stream():
    encoder = FrameEncoder(ModelConfig(frame_stream_order="conv_relu_bn"), in_channels=3)
    assert {s.order for s in encoder.streams} == {"conv_relu_bn"}
    assert {s.order for s in Ststnet(StstnetConfig(layer_order="conv_bn_relu"), 3).streams} == {"conv_bn_relu"}
    assert {s.order for s in Ststnet(StstnetConfig(), 3).streams} == {"conv_relu_bn"}  # the released order


def test_megc2019_image_spans_0_255_reverses_channels_and_ignores_positive_affine_maps():
    g = torch.Generator().manual_seed(2)
    volume = torch.randn(5, 3, 28, 28, generator=g)  # u, v, strain
    image = megc2019_image(volume)
    assert image.shape == volume.shape
    assert torch.equal(image, image.round()) and (image.amin((-2, -1)) == 0).all() and (image.amax((-2, -1)) == 255).all()
    # channel 0 is strain, 2 is u: the brightest pixel of each is where that field is largest
    for c_image, c_volume in ((0, 2), (1, 1), (2, 0)):
        flat = volume[:, c_volume].flatten(1).argmax(1)
        assert (image[:, c_image].flatten(1).gather(1, flat[:, None]) == 255).all()
    scale = torch.rand(1, 3, 1, 1, generator=g) * 3 + 0.1
    shift = torch.randn(1, 3, 1, 1, generator=g)
    assert (megc2019_image(volume * scale + shift) - image).abs().max() <= 1  # equal up to a rounding tie
    assert (megc2019_image(volume * scale + shift) != image).float().mean() < 0.01
    flat = megc2019_image(torch.ones(1, 3, 4, 4))
    assert torch.equal(flat, torch.zeros_like(flat))
