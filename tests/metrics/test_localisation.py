"""Pointing game (TorchRay protocol) on hand-made maps, and class-mean aggregation."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from salbench.metrics import ScoringBatch, create_metric
from salbench.metrics.localisation import pointing_hits


def peaked(size: int, points: list[tuple[int, int]]) -> torch.Tensor:
    """``[N,size,size]`` maps, each zero except 1 at its point."""
    maps = torch.zeros(len(points), size, size)
    for i, (y, x) in enumerate(points):
        maps[i, y, x] = 1.0
    return maps


def square_masks(n: int, size: int, lo: int, hi: int) -> torch.Tensor:
    masks = torch.zeros(n, size, size, dtype=torch.bool)
    masks[:, lo:hi, lo:hi] = True
    return masks


def score(maps: torch.Tensor, masks: torch.Tensor, **params) -> np.ndarray:
    targets = torch.zeros(maps.shape[0], dtype=torch.long)
    images = torch.zeros(maps.shape[0], 3, *maps.shape[1:])
    return create_metric("pointing_game", **params).score(ScoringBatch(images, maps, targets, masks))


def test_hits_inside_misses_beyond_tolerance_at_224():
    points = [(110, 110), (100, 85), (100, 84), (90, 90), (88, 88)]
    # inside; 15 px left of the mask (hit, inclusive); 16 px (miss); diagonal 14.1 px (hit); 17.0 px (miss)
    values = score(peaked(224, points), square_masks(5, 224, 100, 124))
    assert values.dtype == np.float64
    np.testing.assert_array_equal(values, [1, 1, 0, 1, 0])


def test_tolerance_scales_with_image_size():
    metric = create_metric("pointing_game")
    assert metric.tolerance(112, 112) == 7.5 and metric.tolerance(224, 300) == 15
    values = score(peaked(112, [(50, 43), (50, 42)]), square_masks(2, 112, 50, 62))
    np.testing.assert_array_equal(values, [1, 0])
    np.testing.assert_array_equal(score(peaked(112, [(50, 42)]), square_masks(1, 112, 50, 62), tolerance_px=16), [1])


def test_point_is_the_first_maximum_in_row_major_order():
    maps = torch.zeros(2, 64, 64)
    maps[:, 0, 60] = maps[:, 60, 0] = 5.0
    masks = torch.zeros(2, 64, 64, dtype=torch.bool)
    masks[0, 0:3, 58:64] = True  # around the first maximum
    masks[1, 58:64, 0:3] = True  # around the second only
    np.testing.assert_array_equal(pointing_hits(maps, masks, tolerance=2.0).numpy(), [1, 0])


def test_empty_mask_gives_nan():
    masks = square_masks(2, 32, 10, 20)
    masks[1] = False
    values = score(peaked(32, [(12, 12), (12, 12)]), masks)
    assert values[0] == 1 and math.isnan(values[1])


def test_pointing_game_needs_masks():
    with pytest.raises(ValueError, match="masks"):
        batch = ScoringBatch(torch.zeros(1, 3, 8, 8), torch.zeros(1, 8, 8), torch.zeros(1, dtype=torch.long))
        create_metric("pointing_game").score(batch)


def test_pointing_game_declares_the_torchray_protocol():
    metric = create_metric("pointing_game")
    assert metric.aggregate == "class_mean" and metric.needs_mask and metric.higher_is_better
    assert metric.params == {"tolerance_px": 15, "reference_size": 224}
