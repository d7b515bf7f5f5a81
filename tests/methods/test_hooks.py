"""Model surgery for propagation methods: separate activation uses, always restored."""

from __future__ import annotations

import pytest
import torch
import torchvision
from torch import nn
from zennit.composites import EpsilonPlusFlat
from zennit.torchvision import ResNetCanonizer

from salbench.methods.hooks import PerCall, capture_output, registered, separate_activations

from .helpers import images
from .test_registry import assert_no_hooks


def resnet18() -> nn.Module:
    torch.manual_seed(0)
    return torchvision.models.resnet18(weights=None, num_classes=4).eval()


def module_types(model: nn.Module) -> list[tuple[str, str]]:
    return [(name, type(m).__name__) for name, m in model.named_modules()]


def test_each_use_of_a_shared_relu_gets_its_own_module():
    model, x = resnet18(), images(2, size=32)
    structure = module_types(model)
    with torch.no_grad():
        before = model(x)
    calls = []
    with separate_activations(model, x):
        stand_in = model.layer1[0].relu
        assert isinstance(stand_in, PerCall) and len(stand_in.uses) == 2
        assert isinstance(stand_in.uses[0], nn.ReLU) and not stand_in.uses[0].inplace
        for use in stand_in.uses:
            use.register_forward_hook(lambda m, i, o: calls.append(id(m)))
        with torch.no_grad():
            during = model(x)
            model(x)
        assert not isinstance(model.relu, PerCall)  # the stem ReLU is used once
    assert calls == [id(u) for u in stand_in.uses] * 2  # each forward: first use, then second
    torch.testing.assert_close(during, before)
    assert module_types(model) == structure
    assert all(m.inplace for m in model.modules() if isinstance(m, nn.ReLU))
    assert_no_hooks(model)


def test_everything_is_restored_when_the_method_raises():
    model, x = resnet18(), images(1, size=32)
    structure = module_types(model)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(RuntimeError, match="inside"):
        with separate_activations(model, x), registered(EpsilonPlusFlat(canonizers=[ResNetCanonizer()]), model):
            with capture_output(model.layer2):
                model(x)
                raise RuntimeError("inside")
    assert module_types(model) == structure
    assert all(m.inplace for m in model.modules() if isinstance(m, nn.ReLU))
    assert not any(hasattr(m, "canonizer_sum") for m in model.modules())
    assert_no_hooks(model)
    for key, value in model.state_dict().items():
        assert torch.equal(value, state[key]), key


def test_call_counting_keeps_batch_norm_statistics_and_training_mode():
    model, x = resnet18().train(), images(2, size=32)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    with separate_activations(model, x):
        pass
    assert all(m.training for m in model.modules())
    for key, value in model.state_dict().items():
        assert torch.equal(value, state[key]), key


def test_densenet_final_relu_and_pool_become_modules():
    model = torchvision.models.densenet121(weights=None, num_classes=3).eval()
    x = images(1, size=32)
    with torch.no_grad():
        before = model(x)
    with separate_activations(model, x):
        assert isinstance(model.canonizer_relu, nn.ReLU) and isinstance(model.canonizer_pool, nn.AdaptiveAvgPool2d)
        with torch.no_grad():
            torch.testing.assert_close(model(x), before)
    assert not hasattr(model, "canonizer_relu")


def test_stand_ins_are_reused_only_while_they_match_their_module():
    """A reused ReLU's stand-in is cached across calls (no deep copies), and rebuilt once a copy carries a hook
    left behind or the module's settings changed."""
    model, x = resnet18(), images(2, size=32)

    def stand_in() -> PerCall:
        with separate_activations(model, x):
            return model.layer1[0].relu

    first = stand_in()
    assert stand_in() is first
    handle = first.uses[1].register_forward_hook(lambda m, i, o: None)
    second = stand_in()
    assert second is not first and not second.uses[1]._forward_hooks
    handle.remove()
    model.layer1[0].relu.train()
    third = stand_in()
    assert third is not second and all(use.training for use in third.uses)
    assert stand_in() is third
    assert_no_hooks(model)
