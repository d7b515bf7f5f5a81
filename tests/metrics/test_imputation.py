"""ROAD's noisy linear imputation: against Quantus' sparse direct solve, exact cases, the multigrid preconditioner,
noise, errors."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from salbench.metrics.imputation import (
    hierarchy,
    interpolation_matrix,
    linear_imputation,
    neighbour_sum,
    noisy_linear_imputation,
    v_cycle,
)


def removed_from(indices: np.ndarray, size: int) -> torch.Tensor:
    removed = torch.zeros(size * size, dtype=torch.bool)
    removed[torch.from_numpy(indices)] = True
    return removed.view(size, size)


def test_neighbour_weights_are_roads():
    x = torch.zeros(1, 1, 5, 5, dtype=torch.float64)
    x[0, 0, 2, 2] = 12.0
    out = neighbour_sum(x)[0, 0]
    expected = torch.zeros(5, 5, dtype=torch.float64)
    expected[1:4, 1:4] = torch.tensor([[1.0, 2, 1], [2, 0, 2], [1, 2, 1]])
    torch.testing.assert_close(out, expected)
    # in-image weight: 1 inside, 3/6 + 2/12 = 2/3 on an edge, 2/6 + 1/12 = 5/12 in a corner
    degree = neighbour_sum(torch.ones(4, 4, dtype=torch.float64))
    assert [degree[1, 1].item(), degree[0, 1].item(), degree[0, 0].item()] == pytest.approx([1.0, 2 / 3, 5 / 12])


@pytest.mark.parametrize("fraction", [0.1, 0.5, 0.9])
def test_matches_quantus_sparse_direct_solve(fraction):
    perturb = pytest.importorskip("quantus.functions.perturb_func")
    rng = np.random.default_rng(int(fraction * 10))
    size = 24
    images = rng.random((2, 3, size, size))
    removed, expected = [], []
    for image in images:
        indices = rng.permutation(size * size)[: int(size * size * fraction)]
        expected.append(perturb.noisy_linear_imputation(image.copy(), indices, noise=0.0))
        removed.append(removed_from(indices, size))
    ours = linear_imputation(torch.from_numpy(images), torch.stack(removed), tol=1e-11)
    np.testing.assert_allclose(ours.numpy(), np.stack(expected), rtol=0, atol=1e-6)


def test_block_hole_matches_quantus_in_float32_at_the_default_tolerance():
    perturb = pytest.importorskip("quantus.functions.perturb_func")
    size = 32
    image = np.random.default_rng(1).random((3, size, size))
    indices = np.arange(size * size)[: size * size * 3 // 4]  # the top three quarters: one large hole
    expected = perturb.noisy_linear_imputation(image.copy(), indices, noise=0.0)
    ours = linear_imputation(torch.from_numpy(image).float()[None], removed_from(indices, size)[None])
    np.testing.assert_allclose(ours[0].numpy(), expected, rtol=0, atol=2e-3)  # far below ROAD's noise (0.01)


def test_odd_non_square_image_with_a_large_hole_matches_quantus_within_a_few_iterations():
    perturb = pytest.importorskip("quantus.functions.perturb_func")
    rng = np.random.default_rng(2)
    h, w = 45, 38  # odd and even sizes: the coarse grids' last cells cover one fine row or column
    image = rng.random((3, h, w))
    ys, xs = np.mgrid[:h, :w]
    hole = ((ys - 20) ** 2 / 400 + (xs - 18) ** 2 / 250 < 1) | (rng.random((h, w)) < 0.3)  # 70 % removed
    expected = perturb.noisy_linear_imputation(image.copy(), np.flatnonzero(hole), noise=0.0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # Jacobi-preconditioned CG needs far more than 15 iterations here
        ours = linear_imputation(torch.from_numpy(image)[None], torch.from_numpy(hole)[None], tol=1e-10, max_iter=15)
    np.testing.assert_allclose(ours[0].numpy(), expected, rtol=0, atol=1e-8)


def test_interpolation_is_bilinear_upsampling_and_restriction_its_transpose():
    coarse = torch.rand(2, 4, 3, dtype=torch.float64)
    for h, w in ((8, 6), (7, 5)):
        rows, cols = interpolation_matrix(h, coarse), interpolation_matrix(w, coarse)
        assert rows.shape == (h, 4) and cols.shape == (w, 3)
        torch.testing.assert_close(rows.sum(dim=1), torch.ones(h, dtype=torch.float64))  # constants stay constant
        upsampled = F.interpolate(coarse[:, None], scale_factor=2.0, mode="bilinear", align_corners=False)
        torch.testing.assert_close(rows @ coarse @ cols.T, upsampled[:, 0, :h, :w])


def test_v_cycle_is_a_symmetric_positive_definite_preconditioner_that_removes_the_grid_dependence():
    torch.manual_seed(0)
    size = 16
    mask = torch.zeros(size, size, dtype=torch.float64)
    mask[2:14, 1:12] = 1  # a large hole and scattered pixels
    mask[torch.rand(size, size) < 0.2] = 1
    unknowns = mask.flatten().nonzero()[:, 0]
    basis = torch.zeros(len(unknowns), size * size, dtype=torch.float64)
    basis[torch.arange(len(unknowns)), unknowns] = 1
    basis = basis.view(-1, size, size)
    levels = hierarchy(mask.expand(len(unknowns), size, size))
    assert [level.mask.shape[-1] for level in levels] == [16, 8, 4]
    preconditioner = v_cycle(levels, basis).reshape(len(unknowns), -1)[:, unknowns]
    degree = neighbour_sum(torch.ones(size, size, dtype=torch.float64))
    system = ((degree * basis - neighbour_sum(basis)) * mask).reshape(len(unknowns), -1)[:, unknowns]
    torch.testing.assert_close(preconditioner, preconditioner.T, rtol=0, atol=1e-14)
    assert torch.linalg.eigvalsh(preconditioner).min() > 0
    # the preconditioned spectrum is tight; Jacobi's (the diagonal alone) spreads as the hole grows
    def condition(inverse: torch.Tensor) -> float:
        eigenvalues = torch.linalg.eigvals(inverse @ system).real
        return (eigenvalues.max() / eigenvalues.min()).item()

    assert condition(preconditioner) < 3 < 20 < condition(torch.diag(1 / system.diagonal()))


def test_kept_pixels_stay_and_interior_linear_ramps_are_reproduced():
    size = 12
    coords = torch.arange(size, dtype=torch.float64)
    ys, xs = torch.meshgrid(coords, coords, indexing="ij")
    ramp = (0.3 + 0.02 * ys - 0.03 * xs).expand(1, 2, size, size).clone()
    removed = torch.zeros(1, size, size, dtype=torch.bool)
    removed[0, 2:10, 3:9] = True  # interior hole: the weighted neighbour mean of a linear function is exact
    out = linear_imputation(ramp, removed, tol=1e-12)
    torch.testing.assert_close(out, ramp)
    image = torch.rand(1, 3, size, size, dtype=torch.float64)
    out = linear_imputation(image, removed, tol=1e-12)
    torch.testing.assert_close(out[..., ~removed[0]], image[..., ~removed[0]], rtol=0, atol=0)
    # every removed pixel is the weighted mean of its neighbours (the defining equation)
    degree = neighbour_sum(torch.ones(size, size, dtype=torch.float64))
    torch.testing.assert_close((neighbour_sum(out) / degree)[..., removed[0]], out[..., removed[0]])


def test_noise_is_added_to_removed_pixels_only_and_is_seeded():
    image = torch.rand(4, 3, 16, 16)
    removed = torch.rand(4, 16, 16) < 0.5
    clean = linear_imputation(image, removed)
    noisy = noisy_linear_imputation(image, removed, 0.01, torch.Generator().manual_seed(0))
    again = noisy_linear_imputation(image, removed, 0.01, torch.Generator().manual_seed(0))
    torch.testing.assert_close(noisy, again, rtol=0, atol=0)
    diff = (noisy - clean).permute(0, 2, 3, 1)
    assert (diff[~removed] == 0).all()
    assert diff[removed].std().item() == pytest.approx(0.01, rel=0.1)


def test_every_image_must_keep_a_pixel_and_a_short_budget_warns():
    with pytest.raises(ValueError, match="kept pixel"):
        linear_imputation(torch.rand(2, 3, 4, 4), torch.ones(2, 4, 4, dtype=torch.bool))
    removed = torch.ones(1, 16, 16, dtype=torch.bool)
    removed[0, 0, 0] = False
    with pytest.warns(UserWarning, match="RMS residual"):
        linear_imputation(torch.rand(1, 3, 16, 16), removed, tol=1e-9, max_iter=3)
