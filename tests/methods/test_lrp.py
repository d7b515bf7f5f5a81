"""LRP: relevance is conserved, and every variant equals a direct zennit call on the same inputs."""

from __future__ import annotations

from collections import OrderedDict

import pytest
import torch
import torchvision
from torch import nn
from zennit.attribution import Gradient
from zennit.composites import EpsilonGammaBox, EpsilonPlusFlat, LayerMapComposite, layer_map_base
from zennit.rules import AlphaBeta, Epsilon
from zennit.torchvision import ResNetCanonizer
from zennit.types import Convolution

from salbench.methods import create_method
from salbench.methods.canonizers import MatchedMergeBatchNorm, TimmResNetCanonizer
from salbench.models import build_model
from salbench.models.base import NormalizedClassifier

from .helpers import SPEC, images, tiny_model

LRP_METHODS = ["lrp_epsilon", "lrp_alpha1_beta0", "lrp_alpha2_beta1", "lrp_epsilon_plus_flat", "lrp_epsilon_gamma_box"]


def without_biases(model: nn.Module) -> nn.Module:
    for module in model.modules():
        if isinstance(module, (nn.Conv2d, nn.Linear)) and module.bias is not None:
            nn.init.zeros_(module.bias)
    return model


def target_logits(model: nn.Module, x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return model(x)[torch.arange(len(target)), target]


@pytest.mark.parametrize("name", LRP_METHODS)
def test_relevance_sums_to_the_logit_on_a_bias_free_model(name):
    model = without_biases(tiny_model()).double()
    x, target = images(3).double(), torch.tensor([0, 1, 3])
    params = {"epsilon": 1e-12} if "epsilon" in create_method(name).params else {}
    maps = create_method(name, **params).attribute(model, x, target)
    # the rules' 1e-6 stabilisers absorb a little relevance where a denominator is small
    torch.testing.assert_close(maps.sum((1, 2)).double(), target_logits(model, x, target), rtol=1e-3, atol=1e-6)


def bias_free_resnet(arch: str) -> NormalizedClassifier:
    """A residual net with batch norm (non-trivial scales, zero shifts) and no biases anywhere."""
    torch.manual_seed(0)
    if arch == "small_resnet":
        model = build_model("small_resnet", 4)
    else:
        model = NormalizedClassifier(torchvision.models.resnet18(weights=None, num_classes=4), SPEC)
    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d):
            module.weight.data.uniform_(0.5, 1.5)
            module.running_var.uniform_(0.5, 2.0)
    return without_biases(model).eval()


@pytest.mark.parametrize("arch", ["small_resnet", "torchvision_resnet18"])
def test_canonizers_conserve_relevance_through_batch_norm_and_residual_sums(arch):
    """Merged batch norms and proportional residual splits (timm: ours, torchvision: zennit's) conserve relevance."""
    model = bias_free_resnet(arch)
    x, target = images(2, size=32), torch.tensor([1, 2])
    maps = create_method("lrp_epsilon", epsilon=1e-9).attribute(model, x, target)
    torch.testing.assert_close(maps.sum((1, 2)), target_logits(model, x, target), rtol=1e-3, atol=1e-4)


def test_timm_canonizer_keeps_the_function_and_is_removed():
    model = build_model("small_resnet", 4).eval()
    x = images(2, size=32)
    with torch.no_grad():
        before = model(x)
    instances = [i for c in (MatchedMergeBatchNorm(), TimmResNetCanonizer()) for i in c.apply(model.net)]
    assert any(hasattr(m, "canonizer_sum") for m in model.modules())
    with torch.no_grad():
        during = model(x)
    for instance in reversed(instances):
        instance.remove()
    torch.testing.assert_close(during, before, rtol=1e-4, atol=1e-5)
    assert not any(hasattr(m, "canonizer_sum") for m in model.modules())
    assert all(m.bias is None for m in model.modules() if isinstance(m, nn.Conv2d))


def zennit_composite(name: str, low: torch.Tensor, high: torch.Tensor, canonizers: list):
    if name == "lrp_epsilon":
        rule = Epsilon(epsilon=0.01)
    elif name.startswith("lrp_alpha"):
        rule = AlphaBeta(alpha=1.0, beta=0.0) if name == "lrp_alpha1_beta0" else AlphaBeta(alpha=2.0, beta=1.0)
    elif name == "lrp_epsilon_plus_flat":
        return EpsilonPlusFlat(canonizers=canonizers)
    else:
        return EpsilonGammaBox(low=low, high=high, canonizers=canonizers)
    layer_map = layer_map_base() + [(Convolution, rule), (nn.Linear, rule)]
    return LayerMapComposite(layer_map=layer_map, canonizers=canonizers)


@pytest.mark.parametrize("name", LRP_METHODS)
@pytest.mark.parametrize("arch", ["tiny", "torchvision_resnet18"])
def test_equals_direct_zennit_call_on_the_normalised_input(name, arch):
    model = tiny_model() if arch == "tiny" else bias_free_resnet(arch)
    x, target = images(2, size=32), torch.tensor([3, 1])
    z = (x - model.mean) / model.std
    low, high = (0 - model.mean) / model.std, (1 - model.mean) / model.std
    canonizers = [ResNetCanonizer()] if arch != "tiny" else []
    composite = zennit_composite(name, low, high, canonizers)
    with Gradient(model=model.net, composite=composite) as attributor:  # relevance starts at the target logit
        _, expected = attributor(z.clone(), lambda logits: nn.functional.one_hot(target, 4) * logits.detach())
    channels = create_method(name).attribute_channels(model, x, target)
    torch.testing.assert_close(channels, expected, rtol=1e-5, atol=1e-7)


def test_lrp_defaults():
    assert create_method("lrp_epsilon").params == {"epsilon": 0.01, "channel_reduction": "sum"}
    assert create_method("lrp_epsilon_gamma_box").params["gamma"] == 0.25
