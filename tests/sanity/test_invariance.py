"""Kindermans et al.'s mean-shift construction: functionally identical models, and which maps change."""

from __future__ import annotations

from functools import cache
from typing import Callable

import pytest
import torch
import torch.nn.functional as F
from torchvision.models.resnet import BasicBlock, ResNet
from torch import nn

from salbench.methods import create_method
from salbench.models import build_model
from salbench.sanity.invariance import (
    InvarianceError,
    ShiftPaddedConv2d,
    assert_same_logits,
    input_invariance,
    map_differences,
    mean_shifted_model,
)

from methods.helpers import quadrant_model, tiny_model
from .helpers import NUM_CLASSES, images, linear_model


def randomised_batchnorm(model: nn.Module) -> nn.Module:
    """Give batch-norm layers non-trivial statistics, so the first conv's output really matters."""
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.running_mean.uniform_(-0.5, 0.5, generator=generator)
                module.running_var.uniform_(0.5, 2.0, generator=generator)
    return model.eval()


MODELS: dict[str, Callable[[], nn.Module]] = {
    "small_cnn": lambda: randomised_batchnorm(build_model("small_cnn", 4)),
    "small_resnet": lambda: randomised_batchnorm(build_model("small_resnet", 4)),
    # torchvision's ResNet stem: 7x7 stride-2 conv, zero padding 3, no bias, batch norm
    "torchvision_resnet": lambda: randomised_batchnorm(ResNet(BasicBlock, [1, 1, 1, 1], num_classes=4)),
    "tiny_cnn_with_bias": tiny_model,
    "linear": linear_model,
}


@cache
def built(name: str) -> nn.Module:
    """Each model once per session (the construction deep-copies it and never modifies it)."""
    return MODELS[name]()


@pytest.mark.parametrize("name", sorted(MODELS))
@pytest.mark.parametrize("shift", [-1.0, (0.3, -0.5, 0.8)])
def test_shifted_model_gives_the_same_logits(name, shift):
    model = built(name)
    x = images(4, size=32 if name != "linear" else 16)
    shifted = mean_shifted_model(model, shift)
    c = torch.tensor(shift).view(1, -1, 1, 1).expand(1, 3, 1, 1)
    with torch.no_grad():
        expected, actual = model(x), shifted(x + c)
        assert (expected - expected.mean()).abs().max() > 1e-3  # the logits are not trivially constant
    torch.testing.assert_close(actual, expected, atol=2e-5, rtol=1e-5)
    assert assert_same_logits(model, shifted, x, c, atol=1e-4, batch_size=3) < 1e-4


def test_bias_compensation_alone_fails_at_zero_padded_borders():
    """Why the padding is replaced: with zero padding, b - Wd is wrong wherever the kernel overlaps the border."""
    conv = nn.Conv2d(3, 5, 3, padding=1)
    d = torch.tensor([0.5, -1.0, 2.0])
    z = torch.randn(2, 3, 8, 8)
    w_d = (conv.weight * d.view(1, 3, 1, 1)).sum(dim=(1, 2, 3))
    with torch.no_grad():
        naive = F.conv2d(z + d.view(1, 3, 1, 1), conv.weight, conv.bias - w_d, padding=1)
        reference = conv(z)
        fixed = ShiftPaddedConv2d.from_conv(conv, d)
        fixed.bias -= w_d
        torch.testing.assert_close(fixed(z + d.view(1, 3, 1, 1)), reference)
    inner = (slice(None), slice(None), slice(1, -1), slice(1, -1))
    torch.testing.assert_close(naive[inner], reference[inner])
    assert (naive - reference).abs().amax(dim=(0, 1))[0].min() > 1e-3  # every border pixel is off


def test_shift_padded_conv_is_still_a_conv_with_the_same_parameters():
    model = build_model("small_cnn", 4)
    shifted = mean_shifted_model(model, -1.0)
    first = shifted.get_submodule("net.features.0")
    assert isinstance(first, ShiftPaddedConv2d) and isinstance(first, nn.Conv2d)
    assert set(shifted.state_dict()) == set(model.state_dict()) | {"net.features.0.bias", "net.features.0.pad_value"}
    torch.testing.assert_close(first.pad_value, torch.full((3,), -1.0 / 0.25))  # the shift in normalised units
    assert model.get_submodule("net.features.0").bias is None  # the original is untouched
    # shifting twice composes
    twice = mean_shifted_model(shifted, 0.5)
    x = images(2, size=32)
    with torch.no_grad():
        torch.testing.assert_close(twice(x - 0.5), model(x), atol=2e-5, rtol=1e-5)


def test_non_zero_padding_modes_need_only_the_bias():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1, padding_mode="reflect"), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                        nn.Flatten(), nn.Linear(4, 2))
    shifted = mean_shifted_model(net, 0.7)
    assert type(shifted[0]) is nn.Conv2d
    x = images(3)
    with torch.no_grad():
        torch.testing.assert_close(shifted(x + 0.7), net(x), atol=1e-5, rtol=1e-5)


def test_a_model_not_compensable_by_the_first_bias_is_caught():
    # the quadrant mask multiplies the input before the first conv: a bias cannot undo the shift
    model = quadrant_model()
    with pytest.raises(InvarianceError, match="logits differ"):
        input_invariance(create_method("gradient"), model, images(3), torch.zeros(3, dtype=torch.long))


def test_first_layer_must_be_a_convolution():
    with pytest.raises(TypeError, match="Conv2d"):
        mean_shifted_model(nn.Sequential(nn.Flatten(), nn.Linear(12, 2)), 1.0)


def test_a_coda_net_is_compensated_in_its_normalisation():
    """A dynamic alignment unit has no bias: the wrapper's mean absorbs the shift, and the CoDA contributions
    (over the network's own input) are invariant while gradient x input in pixel space is not."""
    model = build_model("small_coda", NUM_CLASSES).eval()
    x, t = images(3), torch.arange(3) % NUM_CLASSES
    assert_same_logits(model, mean_shifted_model(model, -1.0), x, torch.full((1, 3, 1, 1), -1.0), 1e-5, 3)
    assert input_invariance(create_method("coda_contributions"), model, x, t)["relative_l1"].max() < 1e-5
    assert input_invariance(create_method("input_x_gradient"), model, x, t)["relative_l1"].min() > 0.2


def test_gradient_is_invariant_input_times_gradient_is_not():
    """Kindermans et al.: the gradient does not see the shift; gradient x input (and IG from zero) do."""
    x, t = images(4), torch.arange(4) % NUM_CLASSES
    for model in (linear_model(), tiny_model()):
        gradient = input_invariance(create_method("gradient"), model, x, t)
        assert gradient["relative_l1"].max() < 1e-4
        times_input = input_invariance(create_method("input_x_gradient"), model, x, t)
        assert times_input["relative_l1"].min() > 0.2
        ig = input_invariance(create_method("integrated_gradients", n_steps=8), model, x, t)
        assert ig["relative_l1"].min() > 0.2


def test_sampling_methods_draw_the_original_items_noise():
    """SmoothGrad over the gradient is as invariant as the gradient: the shifted input draws the original
    item's noise (seeds come from the item's content, and the shift would otherwise change them)."""
    x, t = images(4), torch.arange(4) % NUM_CLASSES
    smoothgrad = input_invariance(create_method("smoothgrad", n_samples=4), linear_model(), x, t)
    assert smoothgrad["relative_l1"].max() < 1e-4
    smoothgrad_ixg = input_invariance(create_method("smoothgrad", n_samples=4, base="input_x_gradient"),
                                      linear_model(), x, t)
    assert smoothgrad_ixg["relative_l1"].min() > 0.2


def test_map_differences_hand_worked():
    a = torch.tensor([[[1.0, -2.0], [0.0, 1.0]], [[0.0, 0.0], [0.0, 0.0]]])
    b = torch.tensor([[[1.0, -1.0], [0.0, 3.0]], [[0.0, 0.0], [0.0, 0.0]]])
    values = map_differences(a, b)
    torch.testing.assert_close(values["relative_l1"], torch.tensor([3 / 4, 0.0], dtype=torch.float64))
    torch.testing.assert_close(values["relative_max"], torch.tensor([2 / 2, 0.0], dtype=torch.float64))
