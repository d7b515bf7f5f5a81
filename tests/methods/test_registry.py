"""Invariants every registered method must keep (parametrised over the registry)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.modules.module as torch_module
from torch import nn

from salbench.methods import METHODS, list_methods

from .helpers import CHEAP_PARAMS, SIZE, images, make_method, tiny_model

HOOK_DICTS = ("_forward_hooks", "_forward_pre_hooks", "_backward_hooks", "_backward_pre_hooks")
GLOBAL_HOOK_DICTS = tuple(f"_global{attr}" for attr in HOOK_DICTS)


def assert_no_hooks(model: nn.Module) -> None:
    for name, module in model.named_modules():
        for attr in HOOK_DICTS:
            assert not getattr(module, attr), f"{attr} left on {name or 'model'}"
    for attr in GLOBAL_HOOK_DICTS:
        assert not getattr(torch_module, attr), f"global {attr} left"


def skip_unless_applicable(method, model: nn.Module) -> None:
    """Skip the test where the method declares it cannot explain this model (e.g. CAM without GAP + linear,
    CoDA contributions on a CNN); the workflow does not schedule these pairs either."""
    reason = method.skip_reason(model.spec)
    if reason:
        pytest.skip(reason)


def test_registry_lists_the_first_methods():
    assert {"gradient", "gradcam", "random", "sobel", "centre"} <= set(list_methods())
    for name in list_methods():
        cls = METHODS.get(name)
        assert cls.name == name and cls.citation and cls.__doc__


@pytest.mark.parametrize("frozen", [False, True], ids=["trainable", "frozen"])
@pytest.mark.parametrize("name", list_methods())
def test_method_contract_and_no_trace(name, frozen):
    model = tiny_model()
    for p in model.parameters():
        p.requires_grad_(not frozen)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    x = images(3)
    target = torch.tensor([0, 2, 1])
    method = make_method(name, **CHEAP_PARAMS.get(name, {}))
    skip_unless_applicable(method, model)

    maps = method.attribute(model, x, target)

    assert maps.shape == (3, SIZE, SIZE)
    assert maps.dtype == torch.float32 and maps.device == x.device
    assert torch.isfinite(maps).all()
    assert_no_hooks(model)
    assert not model.training
    assert x.grad is None and not x.requires_grad
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k]), f"{k} changed"
    for p in model.parameters():
        assert p.grad is None and p.requires_grad is (not frozen)
    single = torch.cat([method.attribute(model, x[i : i + 1], target[i : i + 1]) for i in range(3)])
    torch.testing.assert_close(maps, single, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", list_methods())
def test_method_keeps_training_mode_and_input_grad_state(name):
    model = tiny_model().train()
    x = images(2).requires_grad_()
    method = make_method(name, **CHEAP_PARAMS.get(name, {}))
    skip_unless_applicable(method, model)
    method.attribute(model, x, torch.tensor([1, 3]))
    assert all(m.training for m in model.modules())
    assert x.requires_grad and x.grad is None
    assert_no_hooks(model)


def assert_clean_run(cls: type, params: dict, model, size: int) -> None:
    """One attribution of two random items: right shape, finite, no hooks left, model state bitwise unchanged."""
    if cls.needs_layer:
        params = {**params, "layer": model.spec.layer(cls.layer_role)}
    x = torch.rand(2, 3, size, size, generator=torch.Generator().manual_seed(1))
    state = {key: value.clone() for key, value in model.state_dict().items()}
    method = cls(**params)
    skip_unless_applicable(method, model)

    maps = method.attribute(model, x, torch.tensor([1, 4]))

    assert maps.shape == (2, size, size) and maps.dtype == torch.float32
    assert torch.isfinite(maps).all()
    assert_no_hooks(model)
    assert not model.training and x.grad is None
    for key, value in model.state_dict().items():
        assert torch.equal(value, state[key]), f"{key} changed"

