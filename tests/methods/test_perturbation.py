"""Occlusion and RISE: exact on a linear model (captum's Occlusion), localise on a quadrant model, batched."""

from __future__ import annotations

import pytest
import torch
from captum.attr import Occlusion as ReferenceOcclusion
from torch import nn

from salbench.methods import create_method
from salbench.models.base import NormalizedClassifier

from .helpers import NUM_CLASSES, SIZE, SPEC, images, quadrant_model
from .threads import one_thread  # noqa: F401  (fixture)

pytestmark = pytest.mark.usefixtures("one_thread")


def linear_model(seed: int = 0) -> NormalizedClassifier:
    torch.manual_seed(seed)
    return NormalizedClassifier(nn.Sequential(nn.Flatten(), nn.Linear(3 * SIZE * SIZE, NUM_CLASSES)), SPEC).eval()


def mean_colour() -> torch.Tensor:
    return torch.tensor(SPEC.mean).view(1, 3, 1, 1)


def test_occlusion_on_a_linear_model_is_the_windowed_weight_times_input_difference():
    model, x, target = linear_model(), images(3), torch.tensor([0, 3, 1])
    maps = create_method("occlusion", window=4, stride=4, max_batch=7).attribute(model, x, target)
    x_ = x.clone().requires_grad_()
    (grad,) = torch.autograd.grad(model(x_).gather(1, target.view(-1, 1)).sum(), x_)
    contribution = (grad * (x - mean_colour())).sum(1)  # weight x (input - baseline), per pixel
    expected = nn.functional.avg_pool2d(contribution.unsqueeze(1), 4).mul(16)
    expected = nn.functional.interpolate(expected, scale_factor=4, mode="nearest").squeeze(1)
    torch.testing.assert_close(maps, expected, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("window,stride", [(4, 2), (5, 3), (16, 8)])
def test_occlusion_matches_captum(window, stride):
    model, x, target = linear_model(), images(2), torch.tensor([2, 1])
    maps = create_method("occlusion", window=window, stride=stride, max_batch=5).attribute(model, x, target)
    reference = ReferenceOcclusion(model).attribute(
        x, sliding_window_shapes=(3, window, window), strides=(3, stride, stride),
        baselines=mean_colour().expand_as(x), target=target,
    )
    torch.testing.assert_close(maps, reference[:, 0].float(), rtol=1e-4, atol=1e-5)


def confident_quadrant_model() -> NormalizedClassifier:
    """``quadrant_model`` with larger class weights, so the target score varies well beyond RISE's noise."""
    model = quadrant_model()
    with torch.no_grad():
        model.net.fc.weight.mul_(10)
    return model


@pytest.mark.parametrize("score,share", [("softmax", 0.6), ("logit", 0.85)])
def test_rise_puts_its_top_pixels_in_the_quadrant_the_model_sees(score, share):
    model, x = confident_quadrant_model(), images(3)
    target = model(x).argmax(1)
    maps = create_method("rise", n_masks=1000, cells=4, score=score).attribute(model, x, target)
    seen = torch.zeros(SIZE, SIZE, dtype=torch.bool)
    seen[: SIZE // 2, : SIZE // 2] = True
    top = maps.flatten(1).topk(SIZE * SIZE // 4, dim=1).indices
    assert (seen.flatten()[top].float().mean(1) > share).all()


def test_rise_is_seeded_and_independent_of_the_memory_cap():
    model, x, target = quadrant_model(), images(2), torch.tensor([0, 1])
    a = create_method("rise", n_masks=64, cells=4, max_batch=256).attribute(model, x, target)
    b = create_method("rise", n_masks=64, cells=4, max_batch=7).attribute(model, x, target)
    c = create_method("rise", n_masks=64, cells=4, seed=1).attribute(model, x, target)
    torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    assert not torch.allclose(a, c)
