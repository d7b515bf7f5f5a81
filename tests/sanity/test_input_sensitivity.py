"""Input-agnostic test: constructed outcomes for controls, a class template and a linear model's gradient."""

from __future__ import annotations

import torch
from torch import nn

from salbench.methods import Method, create_method
from salbench.models import build_model
from salbench.saliency import compute_maps
from salbench.sanity.input_sensitivity import input_sensitivity, noisy_images, partners
from salbench.sanity.similarity import Similarity

from .helpers import NUM_CLASSES, images, linear_model

N = 6


class ClassTemplate(Method):
    """Not registered: a fixed random map per class, whatever the image (input-agnostic by construction)."""

    name = "class_template"
    uses_model = False

    def attribute(self, model: nn.Module, inputs: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        templates = torch.rand(NUM_CLASSES, *inputs.shape[-2:], generator=torch.Generator().manual_seed(0))
        return templates.to(inputs.device)[target]


def run(method: Method, model: nn.Module, x: torch.Tensor, t: torch.Tensor) -> dict[str, torch.Tensor]:
    maps = compute_maps(method, model, x, t, batch_size=4, progress=False)
    return input_sensitivity(method, model, x, t, maps, Similarity(), batch_size=4)


def test_partners_form_one_cycle_without_fixed_points():
    partner = partners(7, seed=3)
    assert sorted(partner.tolist()) == list(range(7)) and (partner != torch.arange(7)).all()
    seen, item = set(), 0
    for _ in range(7):
        seen.add(item)
        item = partner[item].item()
    assert seen == set(range(7)) and torch.equal(partner, partners(7, seed=3))


def test_noisy_images_are_seeded_small_and_in_range():
    x = images(3)
    noisy = noisy_images(x, 0.02, seed=1)
    assert torch.equal(noisy, noisy_images(x, 0.02, seed=1)) and not torch.equal(noisy, noisy_images(x, 0.02, seed=2))
    assert noisy.min() >= 0 and noisy.max() <= 1 and 0.01 < (noisy - x).std() < 0.03


def test_input_agnostic_maps_have_no_gap():
    """Ground truth: the centre prior and a class template give the same map for every image of a class."""
    x, t = images(N), torch.arange(N) % NUM_CLASSES
    for method in (create_method("centre"), ClassTemplate()):
        result = run(method, linear_model(), x, t)
        torch.testing.assert_close(result["within"], torch.ones(N, dtype=torch.float64))
        torch.testing.assert_close(result["gap"], torch.zeros(N, dtype=torch.float64))


def test_gradient_of_a_linear_model_is_input_agnostic_but_not_of_a_cnn():
    """Ground truth: a linear model's gradient is its weight row, the same for every image."""
    x, t = images(N, size=32), torch.arange(N) % NUM_CLASSES
    linear = run(create_method("gradient"), linear_model(), images(N), t)
    torch.testing.assert_close(linear["gap"], torch.zeros(N, dtype=torch.float64), atol=1e-9, rtol=0)
    cnn = run(create_method("gradient"), build_model("small_cnn", NUM_CLASSES).eval(), x, t)
    assert cnn["gap"].min() > 0.15 and (cnn["within"] > cnn["cross"]).all()


def test_image_following_maps_have_a_gap_and_noise_has_none():
    x, t = images(N), torch.arange(N) % NUM_CLASSES
    sobel = run(create_method("sobel"), linear_model(), x, t)
    assert sobel["gap"].min() > 0.3
    random = run(create_method("random"), linear_model(), x, t)
    assert random["within"].abs().max() < 0.2 and random["gap"].abs().mean() < 0.1
