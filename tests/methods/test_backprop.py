"""Guided backprop, deconvnet, guided Grad-CAM and excitation backprop: hand-worked and library checks."""

from __future__ import annotations

import copy
from collections import OrderedDict

import pytest
import torch
import torch.nn.functional as F
import torchvision
from captum.attr import Deconvolution, GuidedBackprop, GuidedGradCam
from torch import nn
from zennit.attribution import Gradient
from zennit.composites import ExcitationBackprop as ZennitExcitationBackprop
from zennit.rules import Pass
from zennit.types import BatchNorm

from salbench.methods import create_method
from salbench.methods.backprop import _clamp_output_gradient, guided_backprop
from salbench.methods.hooks import separate_activations
from salbench.methods.postprocess import upsample
from salbench.models.base import ModelSpec, NormalizedClassifier

from .helpers import SIZE, images, tiny_model
from .test_registry import assert_no_hooks

IDENTITY = ModelSpec(arch="two_layer", input_size=1, mean=(0.0, 0.0), std=(1.0, 1.0), target_layer="net.relu")


def two_layer_model() -> NormalizedClassifier:
    """x (2 channels, 1 px) -> W1 (3 x 2) -> ReLU -> W2 (2 x 3) -> logits; no biases, identity normalisation."""
    net = nn.Sequential(
        OrderedDict(
            hidden=nn.Conv2d(2, 3, 1, bias=False),
            relu=nn.ReLU(),
            out=nn.Conv2d(3, 2, 1, bias=False),
            flatten=nn.Flatten(),
        )
    )
    with torch.no_grad():
        net.hidden.weight.copy_(torch.tensor([[1.0, -1.0], [2.0, 1.0], [-1.0, 1.0]]).view(3, 2, 1, 1))
        net.out.weight.copy_(torch.tensor([[2.0, -1.0, 3.0], [1.0, 1.0, 1.0]]).view(2, 3, 1, 1))
    return NormalizedClassifier(net, IDENTITY).eval()


# x = (1, 2): pre-activations W1 x = (-1, 4, 1), so the ReLU mask is (0, 1, 1); the signal from logit 0 at
# the hidden units is W2[0] = (2, -1, 3).
#   gradient:        (2, -1, 3) * mask                  = (0, -1, 3) -> W1^T (0, -1, 3) = (-5, 2)
#   guided backprop: (2, -1, 3) * mask * [signal > 0]   = (0,  0, 3) -> W1^T (0,  0, 3) = (-3, 3)
#   deconvnet:       max((2, -1, 3), 0), mask ignored   = (2,  0, 3) -> W1^T (2,  0, 3) = (-1, 1)
HAND_X = torch.tensor([1.0, 2.0]).view(1, 2, 1, 1)


@pytest.mark.parametrize(
    ("name", "expected"),
    [("gradient", [-5.0, 2.0]), ("guided_backprop", [-3.0, 3.0]), ("deconvnet", [-1.0, 1.0])],
)
def test_hand_worked_two_layer_example(name, expected):
    method = create_method(name)
    channels = method.attribute_channels(two_layer_model(), HAND_X, torch.tensor([0]))
    torch.testing.assert_close(channels.view(2), torch.tensor(expected), rtol=0, atol=0)
    maps = method.attribute(two_layer_model(), HAND_X, torch.tensor([0]))
    assert maps.item() == max(abs(v) for v in expected)  # the default max-|.| channel reduction


@pytest.mark.parametrize(("name", "library"), [("guided_backprop", GuidedBackprop), ("deconvnet", Deconvolution)])
def test_equals_captum(name, library):
    model, x, target = tiny_model(), images(3), torch.tensor([0, 3, 1])
    expected = library(model).attribute(x.clone().requires_grad_(), target=target).detach()
    channels = create_method(name).attribute_channels(model, x, target)
    torch.testing.assert_close(channels, expected, rtol=0, atol=0)


@pytest.mark.parametrize("mode", ["nearest", "bilinear"])
def test_guided_gradcam_equals_captum(mode):
    model, x, target = tiny_model(), images(3), torch.tensor([2, 0, 1])
    reference = GuidedGradCam(model, model.get_submodule("net.relu3"))
    expected = reference.attribute(x.clone().requires_grad_(), target=target, interpolate_mode=mode).detach()
    method = create_method("guided_gradcam", layer="net.relu3", upsample=mode, channel_reduction="sum")
    channels = method.attribute_channels(model, x, target)
    torch.testing.assert_close(channels, expected, rtol=1e-6, atol=1e-7)


def zennit_excitation(model: nn.Module, x: torch.Tensor, target: torch.Tensor, layer: str) -> torch.Tensor:
    """Signal at ``layer`` from zennit's ExcitationBackprop composite (bias ignored, batch norm passed)."""
    composite = ZennitExcitationBackprop(layer_map=[(BatchNorm, Pass())], zero_params=["bias"])
    kept = []
    handle = model.get_submodule(layer).register_forward_hook(lambda m, i, o: kept.append(o))
    try:
        with Gradient(model=model, composite=composite):
            logits = model(x.clone().requires_grad_())
            (grad,) = torch.autograd.grad(logits, kept[0], F.one_hot(target, logits.shape[1]).float())
    finally:
        handle.remove()
    return grad


def test_excitation_backprop_equals_zennit_and_is_a_distribution():
    model, x, target = tiny_model(), images(3), torch.tensor([0, 1, 2])
    signal = zennit_excitation(model, x, target, "net.relu3")
    maps = create_method("excitation_backprop", layer="net.relu3").attribute(model, x, target)
    expected = upsample(signal.sum(1), (SIZE, SIZE), "bilinear")
    torch.testing.assert_close(maps, expected, rtol=1e-6, atol=1e-8)
    # non-negative activations and no bias: the winning probabilities at the layer sum to one
    assert (signal >= 0).all()
    torch.testing.assert_close(signal.sum((1, 2, 3)), torch.ones(3), rtol=0, atol=2e-3)  # 1e-6 stabilisers


def test_contrastive_excitation_is_target_minus_negated_classifier():
    """TorchRay's definition: EBP of the target minus EBP through the negated classifier weights."""
    model, x, target = tiny_model(), images(3), torch.tensor([3, 0, 2])
    negated = copy.deepcopy(model)
    with torch.no_grad():
        negated.net.fc.weight.neg_()
    difference = zennit_excitation(model, x, target, "net.relu3") - zennit_excitation(negated, x, target, "net.relu3")
    expected = upsample(difference.sum(1), (SIZE, SIZE), "bilinear")
    method = create_method("contrastive_excitation_backprop", layer="net.relu3", rectify=False)
    torch.testing.assert_close(method.attribute(model, x, target), expected, rtol=1e-5, atol=1e-7)
    rectified = create_method("contrastive_excitation_backprop", layer="net.relu3").attribute(model, x, target)
    torch.testing.assert_close(rectified, upsample(difference.sum(1).clamp(min=0), (SIZE, SIZE), "bilinear"),
                               rtol=1e-5, atol=1e-7)


def test_excitation_backprop_rejects_a_non_spatial_layer_and_leaves_no_trace():
    model = tiny_model()
    with pytest.raises(ValueError, match="spatial"):
        create_method("excitation_backprop", layer="net.flatten").attribute(model, images(1), torch.tensor([0]))
    assert_no_hooks(model)
    assert [type(m) for m in model.modules()] == [type(m) for m in tiny_model().modules()]


@pytest.mark.parametrize("arch", ["resnet18", "densenet121"])
def test_guided_backprop_needs_no_split_of_reused_relus(arch):
    """Per-call tensor hooks give the same maps as one ReLU module per use (torchvision reuses ``relu``)."""
    torch.manual_seed(0)
    net = getattr(torchvision.models, arch)(weights=None, num_classes=5).eval()
    model = NormalizedClassifier(net, ModelSpec(arch, 32, (0.5,) * 3, (0.25,) * 3, "net.features", gap_fc=True))
    x, target = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(0)), torch.tensor([1, 3])
    with separate_activations(model, x), torch.enable_grad():  # every use its own module
        handles = [m.register_forward_hook(_clamp_output_gradient) for m in model.modules() if isinstance(m, nn.ReLU)]
        leaf = x.clone().requires_grad_()
        (split,) = torch.autograd.grad(model(leaf).gather(1, target.view(-1, 1)).sum(), leaf)
        for handle in handles:
            handle.remove()
    torch.testing.assert_close(guided_backprop(model, x, target), split, rtol=0, atol=0)


class _Double(nn.Module):
    def __init__(self, inplace: bool) -> None:
        super().__init__()
        self.inplace = inplace

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mul_(2) if self.inplace else x * 2  # in place: modifies the preceding ReLU's output


@pytest.mark.parametrize("arch", ["resnet18", "densenet121", "inplace"])
def test_deconvnet_equals_captum_on_reused_relus_and_leaves_no_trace(arch):
    """The per-module deconvnet ReLU equals captum's hooks on one module per use, also where a ReLU module is
    reused (torchvision) or its output modified in place; every ReLU's own forward is back afterwards."""
    torch.manual_seed(0)
    if arch == "inplace":
        net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(inplace=True), _Double(inplace=True), nn.Conv2d(4, 5, 3),
                            nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten())
    else:
        net = getattr(torchvision.models, arch)(weights=None, num_classes=5).eval()
    model = NormalizedClassifier(net, ModelSpec(arch, 32, (0.5,) * 3, (0.25,) * 3, "net.features", gap_fc=True))
    x, target = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(0)), torch.tensor([1, 3])
    flags = [m.inplace for m in model.modules() if isinstance(m, nn.ReLU)]
    reference = copy.deepcopy(model)  # captum's ReLU backward needs its output unchanged: double out of place
    if arch == "inplace":
        reference.net[2].inplace = False
    with separate_activations(reference, x), torch.enable_grad():
        expected = Deconvolution(reference).attribute(x.clone().requires_grad_(), target=target).detach()
    channels = create_method("deconvnet").attribute_channels(model, x, target)
    torch.testing.assert_close(channels, expected, rtol=0, atol=0)
    assert_no_hooks(model)
    assert not [name for name, m in model.named_modules() if "forward" in m.__dict__]
    assert [m.inplace for m in model.modules() if isinstance(m, nn.ReLU)] == flags
