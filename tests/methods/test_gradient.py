"""Vanilla gradient: agrees with central finite differences and with captum's Saliency."""

from __future__ import annotations

import pytest
import torch
from captum.attr import InputXGradient, Saliency

from salbench.methods import create_method
from salbench.methods.gradient import input_gradient
from salbench.methods.postprocess import reduce_channels

from .helpers import images, tiny_model


def test_input_gradient_matches_central_finite_differences():
    model = tiny_model().double()
    x = images(1, size=6).double()
    target = torch.tensor([2])
    eps = 1e-6
    basis = torch.eye(x.numel(), dtype=torch.float64).view(-1, *x.shape[1:]) * eps
    with torch.no_grad():
        diff = model(x + basis)[:, 2] - model(x - basis)[:, 2]
    numeric = (diff / (2 * eps)).view_as(x)
    analytic = input_gradient(model, x, target)
    assert analytic.dtype == torch.float64
    torch.testing.assert_close(analytic, numeric, rtol=1e-5, atol=1e-8)


@pytest.mark.parametrize("reduction", ["max_abs", "sum", "abs_sum", "l2"])
def test_gradient_equals_captum_saliency(reduction):
    model, x, target = tiny_model(), images(3), torch.tensor([0, 1, 3])
    grads = Saliency(model).attribute(x.clone().requires_grad_(), target=target, abs=False).detach()
    expected = reduce_channels(grads, reduction)
    maps = create_method("gradient", channel_reduction=reduction).attribute(model, x, target)
    torch.testing.assert_close(maps, expected, rtol=0, atol=0)


def test_gradient_default_is_simonyan_max_abs():
    assert create_method("gradient").params == {"channel_reduction": "max_abs"}


def test_gradient_rejects_unknown_reduction():
    with pytest.raises(ValueError, match="channel_reduction"):
        create_method("gradient", channel_reduction="mean")


def test_input_x_gradient_equals_captum():
    model, x, target = tiny_model(), images(3), torch.tensor([2, 0, 1])
    expected = InputXGradient(model).attribute(x.clone().requires_grad_(), target=target).detach()
    method = create_method("input_x_gradient")
    torch.testing.assert_close(method.attribute_channels(model, x, target), expected, rtol=0, atol=0)
    torch.testing.assert_close(method.attribute(model, x, target), expected.sum(1), rtol=0, atol=0)
