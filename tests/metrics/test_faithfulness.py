"""Deletion (RISE protocol): perfect vs reversed maps, AUC rule, chunking, baselines, ties."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from salbench.metrics import ScoringBatch, create_metric
from salbench.metrics.faithfulness import deletion_curves, trapezoid_auc
from salbench.models.base import ModelSpec, NormalizedClassifier

SIZE = 8
SPEC = ModelSpec(arch="test", input_size=SIZE, mean=(0.5, 0.4, 0.3), std=(0.5, 0.5, 0.5), target_layer="net")


class RegionNet(nn.Module):
    """Logit 0 = gain x mean of normalised channel 0 over a fixed region; logit 1 = 0."""

    def __init__(self, region: torch.Tensor, gain: float = 4.0) -> None:
        super().__init__()
        self.register_buffer("region", region.float())
        self.gain = gain

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        s = (z[:, 0] * self.region).sum(dim=(1, 2)) / self.region.sum()
        return torch.stack([self.gain * s, torch.zeros_like(s)], dim=1)


class ConstantNet(nn.Module):
    """Logits ``log(1 - p), log(p)`` whatever the input."""

    def __init__(self, p: float) -> None:
        super().__init__()
        self.register_buffer("logits", torch.tensor([math.log(1 - p), math.log(p)]))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.logits.expand(z.shape[0], 2) + 0 * z.sum(dim=(1, 2, 3))[:, None]


def region_setup(n: int = 3):
    region = torch.zeros(SIZE, SIZE, dtype=torch.bool)
    region[:4, :4] = True
    model = NormalizedClassifier(RegionNet(region), SPEC).eval()
    images = 0.8 + 0.2 * torch.rand(n, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(0))
    return model, images, region, torch.zeros(n, dtype=torch.long)


def small_cnn() -> NormalizedClassifier:
    torch.manual_seed(0)
    net = nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 3)
    )
    return NormalizedClassifier(net, SPEC).eval()


def reference_curves(model, images, maps, targets, steps, fill) -> torch.Tensor:
    """Per-item, per-step loop straight from the protocol's description."""
    pixels = SIZE * SIZE
    curves = torch.zeros(len(images), steps + 1)
    for i, (image, saliency) in enumerate(zip(images, maps)):
        order = torch.argsort(saliency.flatten(), descending=True, stable=True)
        for k in range(steps + 1):
            x = image.clone().reshape(3, -1)
            idx = order[: k * pixels // steps]
            x[:, idx] = fill.reshape(3, 1)
            with torch.no_grad():
                curves[i, k] = model(x.reshape(1, 3, SIZE, SIZE)).softmax(1)[0, targets[i]]
    return curves


def test_perfect_map_deletes_faster_than_its_reverse():
    model, images, region, targets = region_setup()
    perfect = region.float().expand(3, SIZE, SIZE) + 0.01 * torch.rand(3, SIZE, SIZE)
    metric = create_metric("deletion")
    good = metric.score(ScoringBatch(images, perfect, targets, model=model))
    bad = metric.score(ScoringBatch(images, -perfect, targets, model=model))
    assert good.dtype == np.float64 and good.shape == (3,)
    assert (good < bad).all()
    curves = metric.curves(ScoringBatch(images, perfect, targets, model=model))
    # the 16 region pixels go in the first 4 steps of 4 px; then the class evidence is gone (p = 1/2)
    torch.testing.assert_close(curves[:, 4:], torch.full((3, 13), 0.5))
    assert (curves[:, :4].diff(dim=1) < 0).all()


def test_auc_of_a_constant_probability_is_that_probability():
    model = NormalizedClassifier(ConstantNet(0.7), SPEC).eval()
    images = torch.rand(2, 3, SIZE, SIZE)
    batch = ScoringBatch(images, torch.rand(2, SIZE, SIZE), torch.ones(2, dtype=torch.long), model=model)
    values = create_metric("deletion", steps=8).score(batch)
    np.testing.assert_allclose(values, [0.7, 0.7], rtol=1e-6)


def test_trapezoid_rule():
    curves = torch.tensor([[1.0, 0.5, 0.0], [0.2, 0.2, 0.2], [1.0, 0.0, 0.0]], dtype=torch.float64)
    torch.testing.assert_close(trapezoid_auc(curves), torch.tensor([0.5, 0.2, 0.25], dtype=torch.float64))


@pytest.mark.parametrize("baseline", ["mean", "black"])
def test_curves_match_a_per_item_reference_and_chunking_changes_nothing(baseline):
    model, images, targets = small_cnn(), torch.rand(3, 3, SIZE, SIZE), torch.tensor([0, 2, 1])
    maps = torch.rand(3, SIZE, SIZE)
    fill = model.mean.flatten() if baseline == "mean" else torch.zeros(3)
    unchunked = deletion_curves(model, images, maps, targets, steps=5, baseline=baseline, max_batch=256)
    chunked = deletion_curves(model, images, maps, targets, steps=5, baseline=baseline, max_batch=4)
    assert unchunked.shape == (3, 6)
    torch.testing.assert_close(chunked, unchunked, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(unchunked, reference_curves(model, images, maps, targets, 5, fill), rtol=1e-5, atol=1e-6)
    with torch.no_grad():
        intact = model(images).softmax(1)[torch.arange(3), targets]
        empty = model(fill.view(1, 3, 1, 1).expand_as(images)).softmax(1)[torch.arange(3), targets]
    torch.testing.assert_close(unchunked[:, 0], intact)
    torch.testing.assert_close(unchunked[:, -1], empty)


def test_ties_are_removed_in_row_major_order():
    model, images, targets = small_cnn(), torch.rand(2, 3, SIZE, SIZE), torch.tensor([0, 1])
    flat = torch.zeros(2, SIZE, SIZE)
    row_major = -torch.arange(SIZE * SIZE, dtype=torch.float32).view(1, SIZE, SIZE).expand(2, -1, -1)
    tied = deletion_curves(model, images, flat, targets, steps=7)
    torch.testing.assert_close(tied, deletion_curves(model, images, row_major, targets, steps=7), rtol=0, atol=0)


def test_deletion_declares_the_rise_protocol_and_checks_params():
    metric = create_metric("deletion")
    assert metric.needs_model and not metric.higher_is_better
    assert metric.params == {"steps": 16, "baseline": "mean", "max_batch": 256}
    with pytest.raises(ValueError, match="baseline"):
        create_metric("deletion", baseline="blur")
    with pytest.raises(ValueError, match="steps"):
        create_metric("deletion", steps=0)
