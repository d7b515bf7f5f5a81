"""Pointing game (TorchRay protocol) on hand-made maps, and class-mean aggregation."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from salbench.metrics import ScoringBatch, create_metric
from salbench.metrics.localisation import pointing_hits
from salbench.params import ParamError


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


# --- the other localisation metrics -------------------------------------------------------------------


def batch_of(maps: torch.Tensor, masks: torch.Tensor) -> ScoringBatch:
    n = maps.shape[0]
    return ScoringBatch(torch.zeros(n, 3, *maps.shape[1:]), maps, torch.zeros(n, dtype=torch.long), masks)


def run(name: str, maps: torch.Tensor, masks: torch.Tensor, **params) -> np.ndarray:
    values = create_metric(name, **params).score(batch_of(maps, masks))
    assert values.dtype == np.float64 and values.shape == (maps.shape[0],)
    return values


def random_case(n: int = 6, size: int = 16, seed: int = 0, signed: bool = True):
    """Tie-free random maps and random blob masks (each non-empty)."""
    g = torch.Generator().manual_seed(seed)
    maps = torch.randn(n, size, size, generator=g, dtype=torch.float64)
    maps = maps if signed else maps.abs()
    masks = torch.nn.functional.avg_pool2d(torch.rand(n, 1, size, size, generator=g), 5, 1, 2)[:, 0] > 0.5
    masks[:, size // 2, size // 2] = True
    return maps, masks


def test_pointing_game_quantus_has_no_tolerance_and_any_tied_maximum_hits():
    masks = square_masks(4, 32, 10, 20)
    maps = peaked(32, [(12, 12), (12, 9), (12, 9), (12, 9)])
    maps[2, 15, 15] = 1.0  # a tied second maximum inside the mask
    maps[3, 15, 15] = 0.5  # a lower value inside does not count
    np.testing.assert_array_equal(run("pointing_game_quantus", maps, masks), [1, 0, 1, 0])
    # TorchRay's protocol: 1 px from the mask is within its tolerance; its point is the first maximum only
    np.testing.assert_array_equal(run("pointing_game", maps, masks, tolerance_px=2, reference_size=32)[1:3], [1, 1])


def test_energy_pointing_game_counts_positive_energy_inside():
    masks = square_masks(3, 8, 0, 4)  # 16 of 64 pixels
    maps = torch.zeros(3, 8, 8)
    maps[0] = masks[0].float()  # all energy inside
    maps[1] = 1.0  # uniform: 16/64
    maps[2, :4, :4], maps[2, 6, 6], maps[2, 7, 7] = 1.0, 16.0, -100.0  # negative energy is ignored
    np.testing.assert_allclose(run("energy_pointing_game", maps, masks), [1.0, 0.25, 0.5])
    empty = masks.clone()
    empty[0] = False
    values = run("energy_pointing_game", torch.stack([maps[1], -maps[1], maps[1]]), empty)
    assert math.isnan(values[0]) and values[1] == 0.0 and values[2] == 0.25  # no positive energy scores 0


def test_relevance_mass_of_a_mask_aligned_map_is_one_and_sign_handling():
    masks = square_masks(2, 8, 2, 6)
    aligned = masks.float() * torch.rand(2, 8, 8) + masks.float()
    np.testing.assert_allclose(run("relevance_mass", aligned, masks), [1.0, 1.0])
    signed = masks.float() * 2.0
    signed[:, 0, 0] = -1.0
    np.testing.assert_allclose(run("relevance_mass", signed, masks), [1.0, 1.0])  # Arras: positive only
    np.testing.assert_allclose(run("relevance_mass", signed, masks, positive_only=False), [32 / 31, 32 / 31])


def test_relevance_rank_counts_the_top_k_pixels_with_k_the_mask_size():
    masks = square_masks(2, 8, 0, 2)  # K = 4
    maps = torch.zeros(2, 8, 8)
    maps[0, 0, 0], maps[0, 1, 1], maps[0, 5, 5], maps[0, 6, 6] = 4, 3, 2, 1  # 2 of the top 4 inside
    maps[1] = -torch.arange(64.0).view(8, 8)  # top 4 = first row's first 4 pixels: 2 inside
    np.testing.assert_allclose(run("relevance_rank", maps, masks), [0.5, 0.5])
    np.testing.assert_allclose(run("relevance_rank", masks.float() + 0.1 * torch.rand(2, 8, 8), masks), [1.0, 1.0])


def test_miou_of_a_binary_mask_map_is_one_and_of_a_threshold_staircase_is_known():
    masks = square_masks(2, 8, 0, 4)
    np.testing.assert_allclose(run("miou", masks.float(), masks), [1.0, 1.0])
    # a map with values 0.5 inside, 1 on one inside pixel, 0 elsewhere: IoU 1 for t <= 0.5, 1/16 above
    maps = masks.float() * 0.5
    maps[:, 0, 0] = 1.0
    n = 19
    expected = np.mean([1.0 if k / (n + 1) <= 0.5 else 1 / 16 for k in range(1, n + 1)])
    np.testing.assert_allclose(run("miou", maps, masks), [expected] * 2)
    np.testing.assert_allclose(run("miou", torch.ones(2, 8, 8), masks), [0.0, 0.0])  # a constant map selects nothing


def test_top_overlap_metrics_against_mdm_formulas_with_numpy_percentiles():
    maps, masks = random_case(n=4, size=12, seed=3, signed=False)
    eps = 1e-5
    for p in (80, 90, 99):
        expected = {"dice": [], "iou": [], "precision": [], "sensitivity": []}
        for saliency, truth in zip(maps.numpy(), masks.numpy()):
            selected = saliency >= np.percentile(saliency, p)
            inter, a, g = (selected & truth).sum(), selected.sum(), truth.sum()
            expected["dice"].append((2 * inter + eps) / (a + g + eps))
            expected["iou"].append((inter + eps) / ((selected | truth).sum() + eps))
            expected["precision"].append((inter + eps) / (a + eps))
            expected["sensitivity"].append((inter + eps) / (g + eps))
        for quantity, values in expected.items():
            np.testing.assert_allclose(run(f"top_{quantity}", maps, masks, percentiles=[p]), values, rtol=1e-12)
    # a map equal to the mask (plus tiny noise) has precision 1 whenever the top part fits in the mask
    size = 20
    masks = square_masks(1, size, 0, 10)  # 25 % of the pixels
    maps = masks.float() + 1e-3 * torch.rand(1, size, size)
    np.testing.assert_allclose(run("top_precision", maps, masks), [1.0], rtol=1e-6)
    assert run("top_sensitivity", maps, masks)[0] < 0.81  # the top 20 % cover at most 80 % of a 25 % mask


def test_localisation_metrics_give_nan_for_empty_masks_and_need_masks():
    maps, masks = random_case(n=3)
    masks[1] = False
    names = ["pointing_game_quantus", "energy_pointing_game", "relevance_mass", "relevance_rank", "miou",
             "top_dice", "top_iou", "top_precision", "top_sensitivity"]
    for name in names:
        values = run(name, maps, masks)
        assert math.isnan(values[1]) and not np.isnan(values[[0, 2]]).any(), name
        metric = create_metric(name)
        assert metric.needs_mask and not metric.needs_model and metric.higher_is_better and metric.citation
        with pytest.raises(ValueError, match="masks"):
            metric.score(ScoringBatch(torch.zeros(1, 3, 8, 8), torch.zeros(1, 8, 8), torch.zeros(1, dtype=torch.long)))
    with pytest.raises(ValueError, match="n_thresholds"):
        create_metric("miou", n_thresholds=0)
    with pytest.raises(ValueError, match="percentiles"):
        create_metric("top_dice", percentiles=[101])


# --- cross-checks against Quantus 0.6 on identical inputs ---------------------------------------------


def quantus_scores(metric_cls, maps: torch.Tensor, masks: torch.Tensor, **kwargs) -> np.ndarray:
    quantus = pytest.importorskip("quantus")
    n, size = maps.shape[0], maps.shape[-1]
    metric = getattr(quantus, metric_cls)(disable_warnings=True, **kwargs)
    x = np.random.default_rng(0).random((n, 1, size, size))
    values = metric(model=None, x_batch=x, y_batch=np.zeros(n, dtype=int), a_batch=maps.numpy()[:, None],
                    s_batch=masks.numpy()[:, None].astype(float), batch_size=n)
    return np.asarray(values, dtype=np.float64)


@pytest.mark.parametrize("signed", [False, True])
def test_pointing_game_quantus_matches_quantus(signed):
    maps, masks = random_case(n=8, signed=signed)
    maps[0, 0, 0] = maps[0].max() + 1  # a miss
    expected = quantus_scores("PointingGame", maps, masks)
    np.testing.assert_array_equal(run("pointing_game_quantus", maps, masks), expected)


@pytest.mark.parametrize("signed", [False, True])
def test_relevance_mass_and_rank_match_quantus(signed):
    maps, masks = random_case(n=8, signed=signed)
    ours = run("relevance_mass", maps, masks, positive_only=False)  # Quantus sums signed relevance
    np.testing.assert_allclose(ours, quantus_scores("RelevanceMassAccuracy", maps, masks), rtol=0, atol=1e-6)
    ours = run("relevance_rank", maps, masks)
    np.testing.assert_allclose(ours, quantus_scores("RelevanceRankAccuracy", maps, masks), rtol=0, atol=1e-6)


@pytest.mark.parametrize("params", [{"reference_size": 0}, {"reference_size": -224}, {"tolerance_px": -1}])
def test_pointing_game_refuses_a_tolerance_it_cannot_scale(params):
    key = next(iter(params))
    with pytest.raises(ParamError, match=f"metric 'pointing_game': {key} must be a number >= "):
        create_metric("pointing_game", **params)
