"""Similarity measures against independent implementations (scipy, scikit-image) and hand-worked cases."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.ndimage as ndi
import scipy.stats
import torch
from skimage.feature import hog
from skimage.metrics import structural_similarity

from salbench.params import ParamError
from salbench.stats import average_ranks, ranks_on_device, spearman
from salbench.sanity.similarity import (
    MEASURES,
    Similarity,
    abs_normalise,
    gaussian_filter,
    hog_cell_size,
    hog_features,
    minmax_normalise,
    percentile,
    signed_normalise,
    ssim,
)


def pairs(n: int = 6, height: int = 24, width: int = 20, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Correlated map pairs with ties (rounded rows), flat regions and signs."""
    g = torch.Generator().manual_seed(seed)
    a = torch.randn(n, height, width, generator=g, dtype=torch.float64)
    b = a + torch.randn(n, height, width, generator=g, dtype=torch.float64)
    a[0], b[1] = a[0].round(), b[1].round(decimals=1)
    a[2, :10] = 0.0
    return a, b


def test_ranks_and_spearman_match_scipy_with_ties():
    a, b = pairs()
    flat_a, flat_b = a.flatten(1), b.flatten(1)
    expected_ranks = np.stack([scipy.stats.rankdata(row) for row in flat_a.numpy()])
    np.testing.assert_allclose(average_ranks(flat_a).numpy(), expected_ranks, atol=0)
    np.testing.assert_allclose(ranks_on_device(flat_a).numpy(), expected_ranks, atol=0)  # the GPU path
    expected = [scipy.stats.spearmanr(x, y).statistic for x, y in zip(flat_a.numpy(), flat_b.numpy())]
    np.testing.assert_allclose(spearman(flat_a, flat_b).numpy(), expected, atol=1e-12)


def test_spearman_of_a_constant_row_is_nan_as_in_scipy():
    values = torch.tensor([[1.0, 1.0, 1.0, 1.0]], dtype=torch.float64)
    assert torch.isnan(spearman(values, torch.tensor([[1.0, 2.0, 3.0, 4.0]]))).all()


def test_percentile_matches_numpy():
    values = torch.randn(5, 37, dtype=torch.float64)
    for q in (0.0, 50.0, 99.0, 100.0):
        np.testing.assert_allclose(percentile(values, q).numpy(), np.percentile(values.numpy(), q, axis=1), atol=1e-12)


def test_adebayo_normalisation_hand_worked():
    # |map| = 0..99: the 99th percentile is 98.01, so 99 is clipped to it and the map divided by it
    ramp = -torch.arange(100.0).view(1, 10, 10)
    absolute = abs_normalise(ramp)[0]
    assert absolute[-1] == 1.0 and absolute[-2] == pytest.approx(98 / 98.01)
    assert absolute.min() == 0.0
    signed = signed_normalise(ramp)[0]
    assert signed[-1] == -1.0 and signed[50] == pytest.approx(-50 / 98.01)
    # a zero map stays zero instead of dividing by zero
    assert abs_normalise(torch.zeros(1, 4, 4)).eq(0).all() and signed_normalise(torch.zeros(1, 4, 4)).eq(0).all()
    scaled = minmax_normalise(ramp)
    assert scaled.min() == 0.0 and scaled.max() == 1.0 and minmax_normalise(torch.ones(1, 3, 3)).eq(0).all()


def test_gaussian_filter_matches_scipy_reflect():
    a, _ = pairs()
    expected = np.stack([ndi.gaussian_filter(x, 1.5, truncate=3.5, mode="reflect") for x in a.numpy()])
    np.testing.assert_allclose(gaussian_filter(a).numpy(), expected, atol=1e-12)


def test_ssim_matches_skimage_gaussian_weights():
    a, b = pairs()
    a, b = minmax_normalise(a), minmax_normalise(b)
    expected = [structural_similarity(x, y, gaussian_weights=True, data_range=1.0)
                for x, y in zip(a.numpy(), b.numpy())]
    np.testing.assert_allclose(ssim(a, b).numpy(), expected, atol=1e-9)
    np.testing.assert_allclose(ssim(a, a).numpy(), 1.0, atol=1e-12)


@pytest.mark.parametrize("cell", [2, 3, 5])
def test_hog_features_match_skimage(cell):
    a, _ = pairs(n=4, height=32, width=29)
    maps = minmax_normalise(a)
    maps[3] = 0.0
    maps[3, 8:20, 5:17] = 1.0  # a flat square: exact 0/90/180 degree gradients on the bin edges
    expected = np.stack([hog(x, pixels_per_cell=(cell, cell)) for x in maps.numpy()])
    np.testing.assert_allclose(hog_features(maps, cell).numpy(), expected, atol=1e-12)


def test_hog_cell_scales_adebayos_16px_at_299px():
    assert hog_cell_size(299, 299) == 16 and hog_cell_size(224, 224) == 12 and hog_cell_size(64, 64) == 3
    assert hog_cell_size(16, 20) == 2


def test_hog_spearman_matches_scipy_on_skimage_features():
    a, b = pairs(n=3, height=32, width=32)
    value = Similarity(["hog_spearman"], hog_cell=4)(a, b)["hog_spearman"]
    features = [[hog(x, pixels_per_cell=(4, 4)) for x in minmax_normalise(m).numpy()] for m in (a, b)]
    expected = [scipy.stats.spearmanr(x, y).statistic for x, y in zip(*features)]
    np.testing.assert_allclose(value.numpy(), expected, atol=1e-12)


def test_topk_intersection_hand_worked():
    a = torch.zeros(1, 4, 5)
    b = torch.zeros(1, 4, 5)
    a[0, 0, :4] = torch.tensor([4.0, -3.0, 2.0, 1.0])  # top-2 (20 px * 0.1) by |value|: (0,0), (0,1)
    b[0, 0, 0], b[0, 3, 3] = -5.0, 6.0  # top-2: (3,3), (0,0)
    assert Similarity(["topk_intersection"], top_k=0.1)(a, b)["topk_intersection"].item() == 0.5
    assert Similarity(["topk_intersection"], top_k=0.1)(a, a)["topk_intersection"].item() == 1.0


def test_identical_maps_score_one_on_every_measure():
    a, _ = pairs(height=32, width=32)
    for measure, value in Similarity()(a, a).items():
        np.testing.assert_allclose(value.numpy(), 1.0, atol=1e-12, err_msg=measure)


def test_prepared_reference_broadcasts_over_stages():
    a, b = pairs(height=32, width=32)
    c = -b
    similarity = Similarity()
    stacked = similarity.prepare(torch.cat([b, c]))
    staged = {m: v.unflatten(0, (2, a.shape[0])) for m, v in stacked.items()}
    broadcast = similarity.compare({m: v[None] for m, v in similarity.prepare(a).items()}, staged)
    for measure in MEASURES:
        np.testing.assert_allclose(broadcast[measure][0].numpy(), similarity(a, b)[measure].numpy(), atol=1e-12)
        np.testing.assert_allclose(broadcast[measure][1].numpy(), similarity(a, c)[measure].numpy(), atol=1e-12)


def test_signed_and_absolute_spearman_differ_for_sign_flips():
    a, _ = pairs(height=32, width=32)
    values = Similarity(["spearman_abs", "spearman_signed"])(a, -a)
    np.testing.assert_allclose(values["spearman_abs"].numpy(), 1.0, atol=1e-12)
    assert (values["spearman_signed"] < -0.99).all()


def test_bad_parameters_are_errors():
    with pytest.raises(ParamError, match="allowed"):
        Similarity(["pearson"])
    with pytest.raises(ParamError):
        Similarity(top_k=0.0)
    with pytest.raises(ValueError, match="shape"):
        Similarity()(torch.zeros(2, 16, 16), torch.zeros(3, 16, 16))
