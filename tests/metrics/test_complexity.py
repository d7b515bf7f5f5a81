"""Sparseness (Gini) and complexity (entropy) on hand-made maps, and against Quantus 0.6."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from salbench.metrics import ScoringBatch, create_metric
from salbench.metrics.complexity import gini_index


def score(name: str, maps: torch.Tensor) -> np.ndarray:
    n = maps.shape[0]
    batch = ScoringBatch(torch.zeros(n, 3, *maps.shape[1:]), maps, torch.zeros(n, dtype=torch.long))
    values = create_metric(name).score(batch)
    assert values.dtype == np.float64 and values.shape == (n,)
    return values


def test_gini_of_uniform_one_hot_and_hand_worked_vectors():
    values = torch.tensor([[1.0, 1, 1, 1], [0, 0, 0, 1], [1, 2, 3, 4]], dtype=torch.float64)
    # [1,2,3,4]: sum((2i-5) v_i) = -3 - 2 + 3 + 12 = 10; / (4 * 10) = 0.25
    torch.testing.assert_close(gini_index(values), torch.tensor([0.0, 0.75, 0.25], dtype=torch.float64))


def test_sparseness_one_hot_is_about_one_uniform_is_zero_and_sign_is_ignored():
    one_hot = torch.zeros(2, 32, 32)
    one_hot[0, 3, 4], one_hot[1, 30, 1] = 5.0, -0.01
    # (n-1)/n for n pixels, less about n * 1e-7 for Quantus' offset
    np.testing.assert_allclose(score("sparseness", one_hot), [1 - 1 / 1024] * 2, atol=2e-4)
    np.testing.assert_allclose(score("sparseness", torch.full((1, 32, 32), -3.0)), [0.0], atol=1e-12)
    maps = torch.randn(3, 16, 16)
    np.testing.assert_allclose(score("sparseness", maps), score("sparseness", -7 * maps), rtol=1e-7)
    smooth = torch.nn.functional.avg_pool2d(maps[:, None], 5, 1, 2)[:, 0]
    assert (score("sparseness", maps.abs() ** 4) > score("sparseness", smooth.abs() + 1)).all()


def test_complexity_uniform_is_max_entropy_one_hot_is_zero():
    np.testing.assert_allclose(score("complexity", torch.full((2, 16, 16), 0.3)), [math.log(256)] * 2, rtol=1e-9)
    one_hot = torch.zeros(1, 16, 16)
    one_hot[0, 5, 5] = -2.0
    np.testing.assert_allclose(score("complexity", one_hot), [0.0], atol=1e-9)
    two = torch.zeros(1, 16, 16)
    two[0, 0, 0], two[0, 1, 1] = 1.0, -1.0
    np.testing.assert_allclose(score("complexity", two), [math.log(2)], rtol=1e-9)
    assert math.isnan(score("complexity", torch.zeros(1, 4, 4))[0])


def test_complexity_metrics_declare_direction_and_need_nothing():
    sparseness, complexity = create_metric("sparseness"), create_metric("complexity")
    assert sparseness.higher_is_better and not complexity.higher_is_better
    for metric in (sparseness, complexity):
        assert not metric.needs_model and not metric.needs_mask and metric.aggregate == "mean" and metric.citation


@pytest.mark.parametrize("name, quantus_name", [("sparseness", "Sparseness"), ("complexity", "Complexity")])
def test_matches_quantus_with_per_item_normalisation(name, quantus_name):
    quantus = pytest.importorskip("quantus")
    g = torch.Generator().manual_seed(1)
    scales = torch.tensor([1, 10, 0.1, 1, 1, 3.0], dtype=torch.float64).view(6, 1, 1)
    maps = torch.randn(6, 20, 20, generator=g, dtype=torch.float64) * scales
    maps[3] = maps[3].abs() ** 6  # peaked
    x = np.random.default_rng(0).random((6, 1, 20, 20))
    metric = getattr(quantus, quantus_name)(disable_warnings=True, normalise_func_kwargs={"normalise_axes": (1, 2, 3)})
    expected = metric(model=None, x_batch=x, y_batch=np.zeros(6, dtype=int), a_batch=maps.numpy()[:, None].copy(),
                      batch_size=6)
    np.testing.assert_allclose(score(name, maps), expected, rtol=0, atol=1e-6)
