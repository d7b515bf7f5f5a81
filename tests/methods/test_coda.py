"""CoDA contributions: exact decomposition of the logit, from the input and from intermediate layers."""

import pytest
import torch

from salbench.methods import create_method
from salbench.methods.coda import contributions
from salbench.models import build_model
from salbench.models.coda import LOGIT_BIAS, dau_layers
from salbench.params import ParamError

from .test_registry import assert_no_hooks


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return build_model("small_coda", 6).eval()


@pytest.fixture(scope="module")
def batch():
    generator = torch.Generator().manual_seed(1)
    return torch.rand(3, 3, 64, 64, generator=generator), torch.tensor([0, 4, 5])


def _target_logits(model, x, target):
    with torch.no_grad():
        return model(x).gather(1, target[:, None]).squeeze(1)


def test_contributions_plus_the_bias_reproduce_the_logit(model, batch):
    """sum(contributions) + b = logit, and T * sum(contributions) is the sum-pooled output (pre-temperature)."""
    x, target = batch
    maps = create_method("coda_contributions").attribute(model, x, target)
    assert maps.shape == (3, 64, 64) and maps.dtype == torch.float32
    logits = _target_logits(model, x, target)
    torch.testing.assert_close(maps.double().sum(dim=(1, 2)) + LOGIT_BIAS, logits.double(), rtol=1e-4, atol=0)
    pooled = (logits - LOGIT_BIAS) * model.net.head.temperature
    torch.testing.assert_close(maps.double().sum(dim=(1, 2)) * model.net.head.temperature, pooled.double(),
                               rtol=1e-4, atol=0)
    per_channel = contributions(model, x, target)
    assert per_channel.shape == (3, 6, 64, 64)  # [x, 1 - x]: six input channels
    torch.testing.assert_close(per_channel.sum(1), maps)


def test_contributions_are_the_detached_weights_times_the_six_channel_input(model, batch):
    """Not the plain input x gradient: that one does not sum to the logit."""
    x, target = batch
    v = torch.cat([x, 1 - x], dim=1).requires_grad_()
    logits = model.net.head(model.net.pool(model.net.layers(v)))
    (plain,) = torch.autograd.grad(logits.gather(1, target[:, None]).sum(), v)
    exact = contributions(model, x, target)
    assert not torch.allclose(exact, plain * v, rtol=1e-2, atol=1e-6)
    gap = ((plain * v).double().sum(dim=(1, 2, 3)) + LOGIT_BIAS - _target_logits(model, x, target)).abs()
    assert gap.max() > 1e-3


@pytest.mark.parametrize("layer", [0, 2, 4])
def test_intermediate_layer_contributions_also_sum_to_the_logit(model, batch, layer):
    x, target = batch
    name = f"net.layers.{layer}"
    per_channel = contributions(model, x, target, name)
    size = 16 if layer < 2 else 8  # stride 4, then 2
    assert per_channel.shape[-2:] == (size, size)
    logits = _target_logits(model, x, target)
    torch.testing.assert_close(per_channel.double().sum(dim=(1, 2, 3)) + LOGIT_BIAS, logits.double(), rtol=1e-4,
                               atol=0)
    maps = create_method("coda_contributions", layer=name, upsample="nearest").attribute(model, x, target)
    assert maps.shape == (3, 64, 64)
    factor = (64 // size) ** 2  # nearest upsampling repeats each cell factor times
    torch.testing.assert_close(maps.double().sum(dim=(1, 2)) / factor + LOGIT_BIAS, logits.double(), rtol=1e-4, atol=0)


def test_random_inputs_and_targets_on_the_paper_cifar10_model():
    torch.manual_seed(3)
    model = build_model("coda_cifar10", 10).eval()
    generator = torch.Generator().manual_seed(4)
    x = torch.rand(3, 3, 32, 32, generator=generator)
    target = torch.randint(0, 10, (3,), generator=generator)
    maps = create_method("coda_contributions").attribute(model, x, target)
    torch.testing.assert_close(maps.double().sum(dim=(1, 2)) + LOGIT_BIAS,
                               _target_logits(model, x, target).double(), rtol=1e-4, atol=0)


def test_model_is_left_as_it_was(model, batch):
    x, target = batch
    create_method("coda_contributions").attribute(model, x, target)
    assert not any(layer.detach for layer in dau_layers(model))
    assert_no_hooks(model)


def test_only_coda_models_and_valid_params():
    method = create_method("coda_contributions")
    assert method.skip_reason(build_model("small_cnn", 6).spec) is not None
    assert method.skip_reason(build_model("small_coda", 6).spec) is None
    with pytest.raises(ParamError, match="upsample"):
        create_method("coda_contributions", upsample="area")
    with pytest.raises(ParamError, match="layer"):
        create_method("coda_contributions", layer=3)
    x, target = torch.rand(1, 3, 64, 64), torch.tensor([0])
    with pytest.raises(ParamError, match="no layer"):
        create_method("coda_contributions", layer="net.nope").attribute(build_model("small_coda", 6), x, target)
    with pytest.raises(ParamError, match="spatial"):
        create_method("coda_contributions", layer="net.pool").attribute(build_model("small_coda", 6), x, target)


@pytest.mark.parametrize("frozen", [False, True], ids=["trainable", "frozen"])
def test_method_contract_on_a_coda_model(frozen):
    """The registry's contract (tests/methods/test_registry.py) on the model family the method needs."""
    model = build_model("small_coda", 6).eval()
    for p in model.parameters():
        p.requires_grad_(not frozen)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    x, target = torch.rand(3, 3, 64, 64, generator=torch.Generator().manual_seed(5)), torch.tensor([0, 2, 1])
    method = create_method("coda_contributions")
    maps = method.attribute(model, x, target)
    assert_no_hooks(model)
    assert x.grad is None and not x.requires_grad and not model.training
    assert all(torch.equal(v, state[k]) for k, v in model.state_dict().items())
    assert all(p.grad is None and p.requires_grad is (not frozen) for p in model.parameters())
    single = torch.cat([method.attribute(model, x[i:i + 1], target[i:i + 1]) for i in range(3)])
    torch.testing.assert_close(maps, single, rtol=1e-5, atol=1e-6)
    model.train()
    x.requires_grad_()
    method.attribute(model, x[:2], target[:2])
    assert all(m.training for m in model.modules()) and x.requires_grad and x.grad is None
