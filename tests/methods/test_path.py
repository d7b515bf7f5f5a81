"""Integrated and expected gradients: completeness, captum agreement, chunking, seeding, baselines."""

from __future__ import annotations

import pytest
import torch
from captum.attr import IntegratedGradients

from salbench.methods import create_method
from salbench.methods.baselines import gaussian_blur, make_baseline
from salbench.methods.gradient import input_gradient
from salbench.methods.path import QUADRATURES, quadrature
from salbench.methods.sampling import RowSampler

from .helpers import images, tiny_model


def logit_gap(model, x, baseline, target):
    with torch.no_grad():
        rows = torch.arange(len(target))
        return model(x)[rows, target] - model(baseline)[rows, target]


def structured() -> torch.Tensor:
    """Three float64 16 px images: colour ramps plus 4 px checks (the logits differ clearly from a baseline's)."""
    ramp = torch.linspace(0, 1, 16, dtype=torch.float64)
    down, across = ramp.view(16, 1).expand(16, 16), ramp.view(1, 16).expand(16, 16)
    ramps = torch.stack([torch.stack([down, across, 1 - down]), torch.stack([across, 1 - across, down]),
                         torch.stack([1 - down, down * across, across])])
    checks = ((torch.arange(16).view(16, 1) // 4 + torch.arange(16).view(1, 16) // 4) % 2).double()
    return (ramps + checks) / 2


@pytest.mark.parametrize("baseline", ["black", "zero_normalised", "blur", "uniform"])
def test_integrated_gradients_completeness(baseline):
    """Attributions sum to f(x) - f(x') within 1% on a float64 model with enough steps."""
    model, x, target = tiny_model().double(), structured(), torch.tensor([0, 2, 3])
    method = create_method("integrated_gradients", baseline=baseline, n_steps=1000, method="riemann_trapezoid",
                           internal_batch_size=1000, channel_reduction="sum")
    total = method.attribute(model, x, target).double().sum((1, 2))
    expected = logit_gap(model, x, make_baseline(baseline, model, x, 0, 5.0), target)
    assert expected.abs().min() > 1e-4
    # 1% of the gap, or 1e-5 absolute where a random baseline's gap is tiny (the path's error is ~1e-5 there)
    torch.testing.assert_close(total, expected, rtol=0.01, atol=1e-5)


@pytest.mark.parametrize("rule", QUADRATURES)
def test_integrated_gradients_equals_captum(rule):
    model, x, target = tiny_model(), images(3), torch.tensor([1, 0, 2])
    baseline = make_baseline("zero_normalised", model, x, 0, 5.0)
    expected = IntegratedGradients(model).attribute(
        x, baselines=baseline, target=target, n_steps=8, method=rule, internal_batch_size=6
    )
    if rule == "riemann_trapezoid":  # captum's trapezoid weights sum to (n - 1) / n, ours to 1
        expected = expected * 8 / 7
    method = create_method("integrated_gradients", baseline="zero_normalised", n_steps=8, method=rule)
    torch.testing.assert_close(method.attribute_channels(model, x, target), expected, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("name", ["integrated_gradients", "expected_gradients"])
def test_chunked_equals_unchunked(name):
    model, x, target = tiny_model(), images(4), torch.tensor([0, 1, 2, 3])
    steps = {"n_steps": 10} if name == "integrated_gradients" else {"n_samples": 10}
    whole = create_method(name, internal_batch_size=40, **steps).attribute_channels(model, x, target)
    for chunk in (1, 7, 13):
        chunked = create_method(name, internal_batch_size=chunk, **steps).attribute_channels(model, x, target)
        torch.testing.assert_close(chunked, whole, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize(
    ("name", "params"),
    [("integrated_gradients", {"n_steps": 50}), ("expected_gradients", {"n_samples": 50}),
     ("smoothgrad", {"n_samples": 50}),
     ("vargrad", {"n_samples": 50, "base": "integrated_gradients",
                  "base_params": {"n_steps": 3, "internal_batch_size": 16}})],
)
def test_chunks_bound_the_rows_per_forward(name, params):
    """64 items x 50 samples never go through the model at once: at most internal_batch_size rows per forward."""
    model, x, target = tiny_model(), images(4), torch.tensor([0, 1, 2, 3])
    seen = []
    handle = model.register_forward_pre_hook(lambda m, args: seen.append(args[0].shape[0]))
    try:
        create_method(name, internal_batch_size=16, **params).attribute(model, x, target)
    finally:
        handle.remove()
    assert max(seen) <= 16 and sum(seen) >= 4 * 50


@pytest.mark.parametrize("reference", ["uniform", "blur"])
def test_expected_gradients_is_the_mean_over_its_seeded_draws(reference):
    """EG = mean over (reference, alpha) draws of (x - x') * grad f(x' + alpha (x - x')), draws per (item, sample)."""
    model, x, target = tiny_model(), images(2), torch.tensor([1, 3])
    n = 5
    method = create_method("expected_gradients", reference=reference, n_samples=n, seed=7, blur_sigma=3.0)
    sampler = RowSampler(x, 7)
    expected = torch.zeros_like(x)
    for i in range(2):
        for k in range(n):
            row = (torch.tensor([i]), torch.tensor([k]))
            alpha, blur = sampler.uniform(*row, (2,))[0]
            if reference == "uniform":
                ref = sampler.uniform(*row, tuple(x.shape[1:]), stream=1)[0]
            else:
                ref = gaussian_blur(x[i : i + 1], ((1 - blur) * 3.0).view(1), 3.0)[0]
            point = (ref + alpha * (x[i] - ref)).unsqueeze(0)
            expected[i] += ((x[i] - ref) * input_gradient(model, point, target[i : i + 1])[0]) / n
    torch.testing.assert_close(method.attribute_channels(model, x, target), expected, rtol=1e-5, atol=1e-7)


def test_seeded_draws_depend_on_seed_not_on_batch():
    model, x, target = tiny_model(), images(3), torch.tensor([0, 1, 2])
    for name in ("expected_gradients", "integrated_gradients"):
        params = {"n_samples": 4} if name == "expected_gradients" else {"baseline": "uniform", "n_steps": 4}
        full = create_method(name, **params).attribute(model, x, target)
        tail = create_method(name, **params).attribute(model, x[1:], target[1:])
        torch.testing.assert_close(full[1:], tail, rtol=1e-5, atol=1e-7)
        other = create_method(name, seed=1, **params).attribute(model, x, target)
        assert not torch.allclose(full, other)


def test_baselines():
    model, x = tiny_model(), images(2)
    assert torch.equal(make_baseline("black", model, x, 0, 5.0), torch.zeros_like(x))
    mean_colour = make_baseline("zero_normalised", model, x, 0, 5.0)
    assert torch.equal((mean_colour - model.mean) / model.std, torch.zeros_like(x))
    flat = torch.full((1, 3, 9, 9), 0.3)
    torch.testing.assert_close(make_baseline("blur", model, flat, 0, 2.0), flat)
    blurred = make_baseline("blur", model, x, 0, 2.0)
    assert blurred.std() < x.std()
    noise = make_baseline("uniform", model, x, 0, 5.0)
    assert ((noise >= 0) & (noise < 1)).all() and torch.equal(noise, make_baseline("uniform", model, x, 0, 5.0))


def test_quadrature_rules_integrate_polynomials():
    for rule in QUADRATURES:
        alphas, weights = quadrature(rule, 64)
        assert sum(weights) == pytest.approx(1.0)
        assert sum(w * a for a, w in zip(alphas, weights)) == pytest.approx(0.5, abs=1e-2)


def test_integrated_gradients_defaults_and_validation():
    assert create_method("integrated_gradients").params == {
        "baseline": "black", "n_steps": 50, "method": "riemann_right", "internal_batch_size": 64,
        "seed": 0, "blur_sigma": 5.0, "channel_reduction": "sum",
    }
    with pytest.raises(ValueError, match="baseline"):
        create_method("integrated_gradients", baseline="grey")
    with pytest.raises(ValueError, match="n_steps"):
        create_method("integrated_gradients", n_steps=0)
    with pytest.raises(ValueError, match="internal_batch_size"):
        create_method("expected_gradients", internal_batch_size=0)
