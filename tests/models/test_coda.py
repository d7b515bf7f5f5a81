"""CoDA-Nets: the fast DAU against a naive per-position reference, dynamic linearity, the norm bounds,
the paper's CIFAR-10 architecture, and the pieces the pipeline relies on (spec, randomisation, checkpoints)."""

import math

import pytest
import torch
import torch.nn.functional as F

from salbench.models import NormalizedClassifier, build_model, load_checkpoint, randomisation_order, save_checkpoint
from salbench.models.coda import (
    LOGIT_BIAS,
    CoDAConfig,
    CoDANet,
    DAUConv2d,
    EncodedCoDA,
    coda_spec,
    dau_layers,
    explanation_mode,
)
from salbench.sanity.randomisation import reinitialise_

TINY = CoDAConfig(channels=(5, 4, 3), ranks=(3, 4, 2), kernels=(3, 3, 1), strides=(1, 2, 1), paddings=(1, 1, 0),
                  temperature=7.0)


def naive_dau(layer: DAUConv2d, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Output ``[B,J,h,w]`` and effective weights ``g(w) [B,J,D,h*w]``, materialising every w_j(p)."""
    patches = F.unfold(x, layer.kernel_size, padding=layer.padding, stride=layer.stride)  # [B, D, L]
    z = F.conv2d(x, layer.latent_weight, None, layer.stride, layer.padding)
    h, w = z.shape[-2:]
    weights = torch.einsum("kr,brl->bkl", layer.weight, z.flatten(2))
    if layer.bias is not None:
        weights = weights + layer.bias[None, :, None]
    weights = weights.view(x.shape[0], layer.out_channels, -1, h * w)
    norm = weights.norm(dim=2, keepdim=True)
    effective = weights * norm / (1 + norm**2) if layer.norm == "squash" else weights / norm
    return (effective * patches[:, None]).sum(2).view(x.shape[0], layer.out_channels, h, w), effective


@pytest.mark.parametrize("norm", ["squash", "l2"])
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("geometry", [(3, 1, 1), (3, 2, 1), (4, 4, 0), (1, 1, 0), (3, 1, 0)])
def test_fast_dau_equals_the_naive_per_position_weights(norm, bias, geometry):
    torch.manual_seed(0)
    layer = DAUConv2d(5, 7, 4, *geometry, bias=bias, norm=norm).double()
    x = torch.randn(2, 5, 9, 9, dtype=torch.float64)
    torch.testing.assert_close(layer(x), naive_dau(layer, x)[0], rtol=1e-5, atol=1e-5)
    with explanation_mode(torch.nn.Sequential(layer)):  # detaching changes no value
        torch.testing.assert_close(layer(x), naive_dau(layer, x)[0], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("norm", ["squash", "l2"])
def test_detached_dau_applies_the_effective_weights_and_their_norm_is_bounded(norm):
    """With detached weights, d out_j(p) / d patch(p) is g(w_j(p)): ||g|| < 1 (squashing), = 1 (L2)."""
    torch.manual_seed(1)
    layer = DAUConv2d(3, 4, 2, kernel_size=3, padding=0, norm=norm).double()
    x = torch.randn(1, 3, 5, 5, dtype=torch.float64, requires_grad=True)
    _, effective = naive_dau(layer, x.detach())
    layer.detach = True
    out = layer(x)  # 3 x 3 positions, every patch inside the image
    for j in range(4):
        for p in range(9):
            (grad,) = torch.autograd.grad(out[0, j].flatten()[p], x, retain_graph=True)
            patch_grad = F.unfold(grad, 3)[0, :, p]  # the gradient lives on patch p only
            assert grad.abs().sum() == pytest.approx(patch_grad.abs().sum())
            torch.testing.assert_close(patch_grad, effective[0, j, :, p])
    norms = effective.norm(dim=2)
    if norm == "squash":
        assert (norms < 1).all() and (norms > 0).all()
        weights_norm = torch.sqrt(norms / (1 - norms))  # ||g|| = n^2 / (1 + n^2) inverted
        torch.testing.assert_close(norms, weights_norm**2 / (1 + weights_norm**2))
    else:
        torch.testing.assert_close(norms, torch.ones_like(norms))


def test_squashing_scale_is_the_sabour_squash():
    layer = DAUConv2d(1, 1, 1)
    n = torch.tensor([0.0, 0.5, 1.0, 3.0, 100.0])
    scale = layer.weight_scale(n**2)
    torch.testing.assert_close(n * scale, n**2 / (1 + n**2), atol=1e-6, rtol=1e-6)
    assert (n * scale).max() < 1 and scale[0] <= 1e-6  # ||w|| floored at 1e-6


def _input_and_logits(model: torch.nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    captured = []
    handle = model.net.add_inverse.register_forward_hook(lambda m, i, o: captured.append(o))
    logits = model(x)
    handle.remove()
    return captured[0], logits


def _jacobian(model: torch.nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(W [K, 6HW], v [6HW], logits [K])`` of one image: W = d logits / d v."""
    v, logits = _input_and_logits(model, x)
    rows = [torch.autograd.grad(logits[0, k], v, retain_graph=True)[0].flatten() for k in range(logits.shape[1])]
    return torch.stack(rows), v.flatten(), logits[0]


def tiny_model(norm: str = "squash") -> NormalizedClassifier:
    """A 3-layer CoDA-Net with 3 classes for 12 px inputs."""
    config = CoDAConfig(**{**TINY.__dict__, "norm": norm})
    return NormalizedClassifier(CoDANet(config, 3), coda_spec("tiny", config, 12))


@pytest.mark.parametrize("arch", ["tiny-squash", "tiny-l2", "small_coda"])
def test_network_is_its_detached_dynamic_linear_map_applied_to_the_input(arch):
    """y = W(x) v + b with v = [x, 1-x] and W(x) recomputed with the dynamic weights detached."""
    torch.manual_seed(2)
    model = (build_model(arch, 6) if arch == "small_coda" else tiny_model(arch.split("-")[1])).double()
    size = model.spec.input_size
    x = torch.rand(1, 3, size, size, dtype=torch.float64, requires_grad=True)
    with explanation_mode(model):
        w, v, logits = _jacobian(model, x)
    torch.testing.assert_close(w @ v + LOGIT_BIAS, logits, rtol=1e-10, atol=1e-10)
    undetached, _, _ = _jacobian(model, x)  # the plain gradient is not the linear map
    assert not torch.allclose(undetached @ v + LOGIT_BIAS, logits, rtol=1e-3, atol=1e-3)
    assert not any(layer.detach for layer in dau_layers(model))


def test_paper_cifar10_architecture():
    """9L-S-CoDA-SQ-1000: 7,782,816 parameters (10 classes), 8 x 8 last map, T = 1000, b = log(0.1/0.9)."""
    model = build_model("coda_cifar10", 10)
    assert sum(p.numel() for p in model.parameters()) == 7_782_816
    layers = dau_layers(model)
    assert [layer.out_channels for layer in layers] == [16, 16, 32, 32, 32, 64, 64, 64, 10]
    assert [layer.rank for layer in layers] == [32, 32, 64, 64, 64, 64, 64, 64, 64]
    assert [layer.kernel_size for layer in layers] == [3] * 8 + [1]
    assert [layer.stride for layer in layers] == [1, 1, 2, 1, 1, 2, 1, 1, 1]
    assert [layer.padding for layer in layers] == [1] * 8 + [0]
    assert layers[0].in_channels == 6 and all(layer.norm == "squash" for layer in layers)
    assert model.net.head.temperature == 1000 and model.net.head.bias == pytest.approx(math.log(1 / 9))
    spec = model.spec
    assert (spec.family, spec.probability, spec.input_size) == ("coda", "sigmoid", 32)
    assert spec.mean == (0, 0, 0) and spec.std == (1, 1, 1) and "propagation_rules" in spec.lacks


@pytest.mark.parametrize("arch", ["small_coda", "coda_cifar10"])
def test_target_layer_is_the_last_dau_feeding_the_sum_pool(arch):
    model = build_model(arch, 6).eval()
    size = model.spec.input_size
    seen = []
    layer = model.get_submodule(model.spec.target_layer)
    assert layer is dau_layers(model)[-1]
    handle = layer.register_forward_hook(lambda m, i, o: seen.append(o))
    logits = model(torch.rand(2, 3, size, size))
    handle.remove()
    assert seen[0].shape == (2, 6, 8, 8)
    torch.testing.assert_close(seen[0].sum(dim=(2, 3)) / model.net.head.temperature + LOGIT_BIAS, logits)


def test_add_inverse_feeds_pixels_and_their_inverse():
    model = build_model("small_coda", 6)
    x = torch.rand(1, 3, 64, 64)
    v, _ = _input_and_logits(model, x)
    torch.testing.assert_close(v, torch.cat([x, 1 - x], dim=1))


def test_encoded_view_takes_the_six_channel_input():
    """What pixel removal feeds a CoDA-Net: encode gives [x, 1 - x], forward classifies it as the model would."""
    model = build_model("small_coda", 6).eval()
    encoded = EncodedCoDA(model)
    x = torch.rand(2, 3, 64, 64)
    torch.testing.assert_close(encoded.encode(x), torch.cat([x, 1 - x], dim=1))
    torch.testing.assert_close(encoded(encoded.encode(x)), model(x))
    with pytest.raises(TypeError, match="not a CoDA-Net"):
        EncodedCoDA(build_model("small_cnn", 6))


def test_randomisation_reinitialises_each_dau_top_down():
    model = build_model("small_coda", 6)
    order = randomisation_order(model)
    assert order == [f"net.layers.{i}" for i in range(4, -1, -1)]
    layer = model.get_submodule(order[0])
    before = {k: v.clone() for k, v in layer.state_dict().items()}
    reinitialise_(layer, 3)
    after = {k: v.clone() for k, v in layer.state_dict().items()}
    assert all(not torch.equal(before[k], after[k]) for k in before)
    reinitialise_(layer, 3)
    assert all(torch.equal(after[k], v) for k, v in layer.state_dict().items())


def test_explanation_mode_restores_and_needs_daus():
    model = build_model("small_coda", 6)
    dau_layers(model)[1].detach = True
    with pytest.raises(RuntimeError):
        with explanation_mode(model):
            assert all(layer.detach for layer in dau_layers(model))
            raise RuntimeError
    assert [layer.detach for layer in dau_layers(model)] == [False, True, False, False, False]
    with pytest.raises(TypeError, match="no DAU"):
        with explanation_mode(torch.nn.Linear(2, 2)):
            pass


def test_checkpoint_round_trip(tmp_path):
    model = build_model("small_coda", 6).eval()
    save_checkpoint(model, tmp_path / "m.pt", {"num_classes": 6})
    x = torch.rand(2, 3, 64, 64)
    torch.testing.assert_close(load_checkpoint(tmp_path / "m.pt")(x), model(x), rtol=0, atol=0)


def test_bad_dau_settings_are_refused():
    with pytest.raises(ValueError, match="norm"):
        DAUConv2d(3, 3, 2, norm="l1")
    with pytest.raises(ValueError, match="length"):
        CoDAConfig(channels=(2, 3), ranks=(1,), kernels=(3, 3), strides=(1, 1), paddings=(1, 1), temperature=1)
