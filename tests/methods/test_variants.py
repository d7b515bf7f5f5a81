"""Library variants (``<ours>@<library>``): each differs from ours exactly in its declared, measured steps."""

from __future__ import annotations

from collections import OrderedDict

import pytest
import torch
from torch import nn

from salbench.methods import METHODS, list_methods
from salbench.methods.backprop import guided_backprop
from salbench.methods.base import ChannelMethod
from salbench.methods.variants import Same, Variant, aligned_params, variants_of
from salbench.models import build_model
from salbench.models.base import ModelSpec, NormalizedClassifier

from .helpers import SIZE, SPEC, images, make_method, tiny_model
from .test_registry import assert_clean_run

VARIANTS = [name for name in list_methods("*@*") if issubclass(METHODS.get(name), Variant)]
CHEAP = {"n_steps": 4, "n_iter": 4, "internal_batch_size": 8}


def test_every_variant_names_its_base_library_and_differences():
    assert set(VARIANTS) >= {
        "gradcam@captum", "gradcam@pytorch_grad_cam", "guided_backprop@captum", "guided_backprop@zennit",
        "integrated_gradients@captum", "integrated_gradients@zennit", "lrp_epsilon@captum", "lrp_epsilon@zennit",
    }
    for name in VARIANTS:
        cls = METHODS.get(name)
        base, library = name.split("@")
        assert cls.base == base and base in METHODS and library in cls.libraries
        assert cls.differences, f"{name} documents no difference"
        assert set(cls.alignment) <= set(cls.differences)
        for overrides in cls.alignment.values():
            for key, value in overrides.items():
                assert key in cls.defaults
                if isinstance(value, Same):
                    assert value.param in METHODS.get(base).defaults
    assert variants_of("gradcam") == ["gradcam@captum", "gradcam@pytorch_grad_cam"]


@pytest.mark.parametrize("name", VARIANTS)
@pytest.mark.parametrize("arch", ["small_cnn", "small_resnet"])
def test_variant_runs_cleanly_on_the_default_models(arch, name):
    torch.manual_seed(0)
    model = build_model(arch, 5).eval()
    cls = METHODS.get(name)
    assert_clean_run(cls, {k: v for k, v in CHEAP.items() if k in cls.defaults}, model, model.spec.input_size)


def signed_setup():
    """The tiny CNN with items whose captum Grad-CAM has negative values (so the ReLU matters)."""
    model, x, target = tiny_model(), images(4, seed=3), torch.tensor([0, 1, 2, 3])
    return model, x, target


def test_gradcam_captum_differs_by_relu_and_upsampling_only():
    model, x, target = signed_setup()
    ours = make_method("gradcam")
    raw = make_method("gradcam@captum")
    layer_maps = raw.layer_maps(model, x, target)
    assert layer_maps.shape == (4, 1, SIZE // 2, SIZE // 2)
    assert (layer_maps < 0).any(), "the test needs negative evidence to tell the ReLU apart"
    expected = ours.attribute(model, x, target)
    # the measured cause: ReLU then bilinear upsampling of captum's layer map gives our map
    rebuilt = torch.nn.functional.interpolate(layer_maps.clamp(min=0), size=(SIZE, SIZE), mode="bilinear",
                                              align_corners=False).squeeze(1)
    torch.testing.assert_close(rebuilt, expected, rtol=1e-5, atol=1e-6)
    # aligning both declared steps by the variant's own parameters gives our map ...
    both = make_method("gradcam@captum", **aligned_params(type(raw), ("relu", "upsampling"), ours.params))
    torch.testing.assert_close(both.attribute(model, x, target), expected, rtol=1e-5, atol=1e-6)
    # ... and either step alone does not
    for cause in ("relu", "upsampling"):
        one = make_method("gradcam@captum", **aligned_params(type(raw), (cause,), ours.params))
        assert not torch.allclose(one.attribute(model, x, target), expected, atol=1e-4)
    # nearest upsampling: every 2x2 block of the default map is constant and equals the layer map
    default = raw.attribute(model, x, target)
    torch.testing.assert_close(default[:, ::2, ::2], layer_maps.squeeze(1))
    torch.testing.assert_close(default[:, 1::2, 1::2], layer_maps.squeeze(1))


def test_gradcam_pytorch_grad_cam_is_ours_min_max_scaled():
    model, x, target = signed_setup()
    ours = make_method("gradcam").attribute(model, x, target)
    theirs = make_method("gradcam@pytorch_grad_cam").attribute(model, x, target)
    flat = ours.flatten(1)
    lo, hi = flat.min(1, keepdim=True).values, flat.max(1, keepdim=True).values
    scaled = ((flat - lo) / (1e-7 + hi - lo)).view_as(ours)
    # OpenCV's bilinear resize rounds its interpolation weights: a residual of up to ~2e-3 of the range
    torch.testing.assert_close(theirs, scaled, rtol=0, atol=3e-3)
    assert (theirs - scaled).abs().max() > 1e-6
    assert not torch.allclose(theirs, ours, atol=1e-2)


@pytest.mark.parametrize("library", ["captum", "zennit"])
def test_guided_backprop_variant_differs_only_in_channel_reduction(library):
    model, x, target = signed_setup()
    ours = make_method("guided_backprop")
    name = f"guided_backprop@{library}"
    variant = make_method(name)
    channels = guided_backprop(model, x, target)
    # the library's map is the signed channel sum of the same rule ...
    torch.testing.assert_close(variant.attribute(model, x, target), channels.sum(1), rtol=1e-5, atol=1e-7)
    # ... and with our channel reduction it is our map
    aligned = make_method(name, **aligned_params(type(variant), ("channel_reduction",), ours.params))
    torch.testing.assert_close(aligned.attribute(model, x, target), ours.attribute(model, x, target),
                               rtol=1e-5, atol=1e-7)
    assert not torch.allclose(variant.attribute(model, x, target), ours.attribute(model, x, target), atol=1e-5)


def test_integrated_gradients_variants_differ_in_steps_and_quadrature():
    model, x, target = signed_setup()
    ours = make_method("integrated_gradients", n_steps=8)
    expected = ours.attribute(model, x, target)
    zennit = METHODS.get("integrated_gradients@zennit")
    aligned = zennit(**aligned_params(zennit, ("steps",), ours.params))
    assert aligned.params["n_iter"] == 8
    torch.testing.assert_close(aligned.attribute(model, x, target), expected, rtol=1e-4, atol=1e-6)
    assert not torch.allclose(zennit().attribute(model, x, target), expected, atol=1e-5)
    captum = METHODS.get("integrated_gradients@captum")
    aligned = captum(**aligned_params(captum, ("quadrature",), ours.params))
    torch.testing.assert_close(aligned.attribute(model, x, target), expected, rtol=1e-4, atol=1e-6)
    default = captum(n_steps=8)
    assert not torch.allclose(default.attribute(model, x, target), expected, atol=1e-5)
    # captum's default quadrature is complete: the attributions sum to f(x) - f(0)
    gaps = (model(x) - model(torch.zeros_like(x))).gather(1, target[:, None]).squeeze(1)
    sums = captum().attribute(model, x, target).sum(dim=(1, 2))
    torch.testing.assert_close(sums.double(), gaps.detach().double(), rtol=2e-2, atol=2e-3)


def bias_free_model(seed: int = 0) -> NormalizedClassifier:
    """A ReLU CNN without biases or normalisation (mean 0, std 1), where LRP-epsilon conserves the logit."""
    torch.manual_seed(seed)
    net = nn.Sequential(OrderedDict(
        conv1=nn.Conv2d(3, 6, 3, padding=1, bias=False), relu1=nn.ReLU(), pool=nn.MaxPool2d(2),
        conv2=nn.Conv2d(6, 8, 3, padding=1, bias=False), relu2=nn.ReLU(), gap=nn.AdaptiveAvgPool2d(1),
        flatten=nn.Flatten(), fc=nn.Linear(8, 4, bias=False),
    ))
    with torch.no_grad():
        net.fc.weight.abs_()  # positive logits, well away from 0
    spec = ModelSpec(arch="bias_free", input_size=SIZE, mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0),
                     target_layer="net.relu2")
    return NormalizedClassifier(net, spec).eval()


def test_lrp_epsilon_captum_and_zennit_conserve_from_their_starts():
    model, x, target = bias_free_model(), images(4, seed=5), torch.tensor([0, 1, 2, 3])
    logits = model(x).gather(1, target[:, None]).squeeze(1).detach()
    assert (logits.abs() > 1e-3).all()
    captum = make_method("lrp_epsilon@captum").attribute(model, x, target)
    zennit = make_method("lrp_epsilon@zennit").attribute(model, x, target)
    # captum starts at the logit, zennit (one-hot) at 1; both conserve it through a bias-free net
    torch.testing.assert_close(captum.sum(dim=(1, 2)), logits, rtol=1e-3, atol=1e-5)
    torch.testing.assert_close(zennit.sum(dim=(1, 2)), torch.ones(4), rtol=1e-3, atol=1e-5)
    # the start is a per-item scale: the maps agree once it is divided out
    torch.testing.assert_close(captum, zennit * logits[:, None, None], rtol=1e-3, atol=1e-5)
    # ours (zennit, epsilon 0.01, started at the logit) conserves the same total up to its epsilon's absorption
    ours = make_method("lrp_epsilon", epsilon=1e-9).attribute(model, x, target)
    torch.testing.assert_close(ours, captum, rtol=1e-3, atol=1e-5)


def test_aligned_params_rejects_an_unknown_cause():
    with pytest.raises(ValueError, match="no alignment"):
        aligned_params(METHODS.get("gradcam@captum"), ("layer",), {})


def test_variants_are_channel_methods_where_the_base_is():
    for name in VARIANTS:
        cls = METHODS.get(name)
        assert issubclass(cls, ChannelMethod) == issubclass(METHODS.get(cls.base), ChannelMethod)
    assert SPEC.layer() == "net.relu3"


@pytest.mark.parametrize("name", VARIANTS)
def test_variant_explains_the_input_invariance_checks_mean_shifted_model(name):
    """The input-invariance check swaps the first convolution for a Conv2d subclass; every variant must run on it."""
    from salbench.sanity.invariance import mean_shifted_model

    model = build_model("small_cnn", 5).eval()
    shifted = mean_shifted_model(model, -1.0)
    x = torch.rand(2, 3, model.spec.input_size, model.spec.input_size, generator=torch.Generator().manual_seed(0))
    cls = METHODS.get(name)
    maps = make_method(name, model.spec, **{k: v for k, v in CHEAP.items() if k in cls.defaults}).attribute(
        shifted, x - 1.0, torch.tensor([0, 3]))
    assert maps.shape == (2, *x.shape[-2:]) and torch.isfinite(maps).all()
