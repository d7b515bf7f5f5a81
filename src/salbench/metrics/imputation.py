"""Noisy linear imputation (Rong, Leemann, Borisov, Kasneci & Kasneci, ICML 2022), solved on the device.

ROAD replaces each removed pixel by the weighted mean of its 8 neighbours (weight 1/6 for the 4 direct
neighbours, 1/12 for the 4 diagonal ones; neighbours outside the image are left out and the weights of
the rest renormalised), where removed neighbours take their own imputed values. Per channel this is the
sparse linear system, over the removed pixels ``r`` with the kept pixels ``k`` fixed,

    d_r u_r - sum_{s removed} w_rs u_s = sum_{k kept} w_rk x_k        (d_r = sum of r's in-image weights),

symmetric positive definite whenever at least one pixel is kept. Every (image, channel) system of a batch
is solved at once by conjugate gradients preconditioned by ``d`` (Jacobi), matrix-free on the full
``[B,C,H,W]`` grid, started from the same imputation on a 2x coarser grid (recursively); systems leave
the batch as they converge. Gaussian noise of std ``noise`` is then added to the imputed pixels, as the
authors' ``NoisyLinearImputer`` does. (The authors and Quantus build the system with scipy and solve it
with a sparse direct solver, one image at a time on the CPU.)
"""

from __future__ import annotations

import warnings

import torch
import torch.nn.functional as F


def neighbour_sum(x: torch.Tensor) -> torch.Tensor:
    """ROAD's weighted sum of the 8 neighbours of each pixel of ``[..., H, W]`` (zero outside the image).

    The 3x3 weights (1/12 diagonal, 1/6 direct, 0 centre) are ``([1,2,1] outer [1,2,1] - 4 delta) / 12``,
    so the sum is one separable [1,2,1] filter minus four times the centre.
    """
    rows = F.pad(x, (1, 1, 0, 0))
    rows = rows[..., :-2] + 2 * x + rows[..., 2:]
    cols = F.pad(rows, (0, 0, 1, 1))
    return (cols[..., :-2, :] + 2 * rows + cols[..., 2:, :] - 4 * x) / 12


def _safe_ratio(num: torch.Tensor, den: torch.Tensor) -> torch.Tensor:
    """``num / den`` where ``den != 0``, else 0."""
    nonzero = den != 0
    return torch.where(nonzero, num / torch.where(nonzero, den, torch.ones_like(den)), torch.zeros_like(num))


def _dot(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return (a * b).sum(dim=(-2, -1), keepdim=True)


def linear_imputation(
    images: torch.Tensor, removed: torch.Tensor, tol: float = 1e-5, max_iter: int = 2000, check_every: int = 4
) -> torch.Tensor:
    """``images`` ``[B,C,H,W]`` with the ``removed`` ``[B,H,W]`` pixels replaced by ROAD's linear imputation.

    A system stops when the RMS residual over its removed pixels is at most ``tol`` (pixel units; checked
    every ``check_every`` iterations); after ``max_iter`` iterations a warning gives the worst residual.
    Each image must keep at least one pixel.
    """
    b, c, h, w = images.shape
    mask = removed[:, None].to(images.dtype).expand(b, c, h, w).reshape(b * c, h, w)
    if bool((mask.sum(dim=(1, 2)) == h * w).any()):
        raise ValueError("linear imputation needs at least one kept pixel per image")
    return _solve(images.reshape(b * c, h, w), mask, tol, max_iter, check_every).reshape(b, c, h, w)


def _coarse_start(
    values: torch.Tensor, mask: torch.Tensor, tol: float, max_iter: int, check_every: int
) -> torch.Tensor:
    """Start for the removed pixels: the imputation of the 2x coarser grid, bilinearly upsampled.

    A coarse pixel keeps the mean of its kept fine pixels and is removed when all four are; this removes
    most of the smooth error, the part conjugate gradients reduce slowest (a cascadic multigrid start).
    """
    keep = (1 - mask)[:, None]
    kept = F.avg_pool2d(keep, 2, ceil_mode=True)
    coarse = F.avg_pool2d(values[:, None] * keep, 2, ceil_mode=True) / kept.clamp(min=1e-12)
    solved = _solve(coarse[:, 0], (kept[:, 0] == 0).to(values.dtype), tol, max_iter, check_every)
    return F.interpolate(solved[:, None], size=values.shape[-2:], mode="bilinear", align_corners=False)[:, 0]


def _solve(values: torch.Tensor, mask: torch.Tensor, tol: float, max_iter: int, check_every: int) -> torch.Tensor:
    """Preconditioned CG on ``[S,H,W]`` systems (``mask`` 1 on the removed pixels); returns the imputed grids."""
    h, w = values.shape[-2:]
    degree = neighbour_sum(torch.ones((h, w), dtype=values.dtype, device=values.device))  # in-image weight
    known = values * (1 - mask)
    rhs = neighbour_sum(known) * mask
    if min(h, w) >= 8:
        solution = _coarse_start(values, mask, tol, max_iter, check_every) * mask
    else:
        solution = rhs / degree  # weighted mean of the kept neighbours (0 where there are none)
    limit = tol**2 * mask.sum(dim=(1, 2), keepdim=True)
    active = torch.arange(len(values), device=values.device)
    u, m = solution, mask
    r = rhs - (degree * u - neighbour_sum(u)) * m
    z = r / degree
    p, rz = z, _dot(r, z)
    for iteration in range(1, max_iter + 1):
        if iteration % check_every == 1 or check_every == 1:
            done = (_dot(r, r) <= limit).flatten()
            solution = solution.index_copy(0, active[done], u[done])
            if bool(done.all()):
                break
            if bool(done.any()):
                keep = ~done
                active, u, r, p, rz, m, limit = (t[keep] for t in (active, u, r, p, rz, m, limit))
        ap = (degree * p - neighbour_sum(p)) * m  # p is zero off the removed pixels
        alpha = _safe_ratio(rz, _dot(p, ap))
        u, r = u + alpha * p, r - alpha * ap
        z = r / degree
        rz_next = _dot(r, z)
        p, rz = z + _safe_ratio(rz_next, rz) * p, rz_next
    else:
        rms = (_dot(r, r) / limit * tol**2).sqrt().max().item()
        warnings.warn(f"linear imputation stopped after {max_iter} iterations at RMS residual {rms:.2e} > {tol:.2e}")
        solution = solution.index_copy(0, active, u)
    return known + solution * mask


def noisy_linear_imputation(
    images: torch.Tensor,
    removed: torch.Tensor,
    noise: float,
    generator: torch.Generator | None = None,
    tol: float = 1e-5,
    max_iter: int = 2000,
) -> torch.Tensor:
    """:func:`linear_imputation` plus ``noise`` x N(0, 1) on each removed pixel and channel (ROAD's imputer)."""
    imputed = linear_imputation(images, removed, tol=tol, max_iter=max_iter)
    if noise == 0:
        return imputed
    draw = torch.randn(images.shape, generator=generator, dtype=images.dtype, device=images.device)
    return imputed + noise * draw * removed[:, None].to(images.dtype)
