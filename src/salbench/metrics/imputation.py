"""Noisy linear imputation (Rong, Leemann, Borisov, Kasneci & Kasneci, ICML 2022), solved on the device.

ROAD replaces each removed pixel by the weighted mean of its 8 neighbours (weight 1/6 for the 4 direct
neighbours, 1/12 for the 4 diagonal ones; neighbours outside the image are left out and the weights of
the rest renormalised), where removed neighbours take their own imputed values. Per channel this is the
sparse linear system, over the removed pixels ``r`` with the kept pixels ``k`` fixed,

    d_r u_r - sum_{s removed} w_rs u_s = sum_{k kept} w_rk x_k        (d_r = sum of r's in-image weights),

symmetric positive definite whenever at least one pixel is kept. Every (image, channel) system of a batch
is solved at once by conjugate gradients, matrix-free on the full ``[B,C,H,W]`` grid; systems leave the
batch as they converge. The preconditioner is one multigrid V-cycle (Brandt 1977; as a CG preconditioner,
Tatebe 1993): a Jacobi sweep, the residual moved to a 2x coarser grid (where a pixel is removed when all of
its fine pixels are) by the transpose of cell-centred bilinear interpolation, the same system solved there
recursively (a few Jacobi sweeps on the coarsest grid), its solution interpolated back, a second Jacobi
sweep. Coarse grids carry the smooth error that Jacobi alone would remove only over hundreds of
iterations, so a system converges in a handful of iterations whatever the size of its holes. The cycle is
symmetric (the post-sweep mirrors the pre-sweep, restriction is the transpose of interpolation), as
conjugate gradients require. Gaussian noise of std ``noise`` is then added to the imputed pixels, as the
authors' ``NoisyLinearImputer`` does. (The authors and Quantus build the system with scipy and solve it
with a sparse direct solver, one image at a time on the CPU.)
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import torch
import torch.nn.functional as F

#: Jacobi sweeps that stand in for an exact solve on the coarsest grid (at most 7 x 7 pixels)
COARSEST_SWEEPS = 8


def neighbour_sum(x: torch.Tensor) -> torch.Tensor:
    """ROAD's weighted sum of the 8 neighbours of each pixel of ``[..., H, W]`` (zero outside the image).

    The 3x3 weights (1/12 diagonal, 1/6 direct, 0 centre) are ``([1,2,1] outer [1,2,1] - 4 delta) / 12``,
    so the sum is one separable [1,2,1] filter minus four times the centre.
    """
    rows = 2 * x
    rows[..., 1:] += x[..., :-1]
    rows[..., :-1] += x[..., 1:]
    out = 2 * rows
    out[..., 1:, :] += rows[..., :-1, :]
    out[..., :-1, :] += rows[..., 1:, :]
    return out.sub_(x, alpha=4).div_(12)


def _safe_ratio(num: torch.Tensor, den: torch.Tensor) -> torch.Tensor:
    """``num / den`` where ``den != 0``, else 0."""
    nonzero = den != 0
    return torch.where(nonzero, num / torch.where(nonzero, den, torch.ones_like(den)), torch.zeros_like(num))


def _dot(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return (a * b).sum(dim=(-2, -1), keepdim=True)


def interpolation_matrix(fine: int, like: torch.Tensor) -> torch.Tensor:
    """``[fine, ceil(fine/2)]``: cell-centred linear 2x interpolation along one axis (edge values held).

    Coarse cell ``j`` covers fine cells ``2j`` and ``2j+1`` (the last one alone when ``fine`` is odd).
    """
    coarse = (fine + 1) // 2
    eye = torch.eye(coarse, dtype=like.dtype, device=like.device)[None]
    return F.interpolate(eye, scale_factor=2.0, mode="linear", align_corners=False)[0, :, :fine].T


@dataclass
class Level:
    """One grid of the hierarchy: which pixels are unknowns, ``mask / degree``, interpolation from the next."""

    mask: torch.Tensor  # [S,h,w] 1 on the removed pixels
    scaled_inverse: torch.Tensor  # [S,h,w] mask / degree: one Jacobi sweep from zero is residual * this
    rows: torch.Tensor | None = None  # [h, ceil(h/2)] interpolation from the next coarser level (None: coarsest)
    cols: torch.Tensor | None = None  # [w, ceil(w/2)]

    def subset(self, keep: torch.Tensor) -> "Level":
        return Level(self.mask[keep], self.scaled_inverse[keep], self.rows, self.cols)


def hierarchy(mask: torch.Tensor) -> list[Level]:
    """Levels from ``mask`` ``[S,H,W]`` down to a grid under 8 pixels wide, each 2x coarser than the last.

    A coarse pixel is removed when all of its fine pixels are, so coarse unknowns lie inside the fine holes.
    """
    levels = []
    while True:
        (h, w), device = mask.shape[-2:], mask.device
        scaled_inverse = mask / neighbour_sum(torch.ones((h, w), dtype=mask.dtype, device=device))
        if min(h, w) < 8:
            return [*levels, Level(mask, scaled_inverse)]
        levels.append(Level(mask, scaled_inverse, interpolation_matrix(h, mask), interpolation_matrix(w, mask)))
        mask = 1 - F.max_pool2d((1 - mask)[:, None], 2, ceil_mode=True)[:, 0]


def v_cycle(levels: list[Level], residual: torch.Tensor) -> torch.Tensor:
    """One symmetric multigrid V-cycle for ``A e = residual`` on ``levels`` (finest first): the preconditioner."""
    level = levels[0]
    e = residual * level.scaled_inverse  # Jacobi sweep from zero
    if level.rows is None:
        for _ in range(COARSEST_SWEEPS - 1):
            e = (residual + neighbour_sum(e)) * level.scaled_inverse
        return e
    # after that sweep the residual is neighbour_sum(e) on the unknowns (the diagonal part cancels)
    coarse = level.rows.T @ (neighbour_sum(e) * level.mask) @ level.cols * levels[1].mask
    e = e + level.rows @ v_cycle(levels[1:], coarse) @ level.cols.T * level.mask
    return (residual + neighbour_sum(e)) * level.scaled_inverse  # the mirrored Jacobi sweep


def linear_imputation(
    images: torch.Tensor, removed: torch.Tensor, tol: float = 1e-5, max_iter: int = 200
) -> torch.Tensor:
    """``images`` ``[B,C,H,W]`` with the ``removed`` ``[B,H,W]`` pixels replaced by ROAD's linear imputation.

    A system stops when the RMS residual over its removed pixels is at most ``tol`` (pixel units); after
    ``max_iter`` iterations a warning gives the worst residual. Each image must keep at least one pixel.
    """
    b, c, h, w = images.shape
    mask = removed[:, None].to(images.dtype).expand(b, c, h, w).reshape(b * c, h, w)
    if bool((mask.sum(dim=(1, 2)) == h * w).any()):
        raise ValueError("linear imputation needs at least one kept pixel per image")
    return _solve(images.reshape(b * c, h, w), mask, tol, max_iter).reshape(b, c, h, w)


def _solve(values: torch.Tensor, mask: torch.Tensor, tol: float, max_iter: int) -> torch.Tensor:
    """Multigrid-preconditioned CG on ``[S,H,W]`` systems (``mask`` 1 on the removed pixels); the imputed grids."""
    levels = hierarchy(mask)
    degree = neighbour_sum(torch.ones(mask.shape[-2:], dtype=values.dtype, device=values.device))
    known = values * (1 - mask)
    solution = torch.zeros_like(values)
    limit = tol**2 * mask.sum(dim=(1, 2), keepdim=True)
    active = torch.arange(len(values), device=values.device)
    u, r = torch.zeros_like(values), neighbour_sum(known) * mask  # start from 0: the residual is the rhs
    p = v_cycle(levels, r)
    rz = _dot(r, p)
    for iteration in range(max_iter + 1):
        rr = _dot(r, r)
        done = (rr <= limit).flatten()
        if iteration == max_iter and not bool(done.all()):
            rms = (rr / limit).sqrt().max().item() * tol
            stopped = f"linear imputation stopped after {max_iter} iterations"
            warnings.warn(f"{stopped} at RMS residual {rms:.2e} > {tol:.2e}")
            done[:] = True
        if bool(done.any()):
            solution = solution.index_copy(0, active[done], u[done])
            if bool(done.all()):
                break
            keep = ~done
            active, u, r, p, rz, limit = (t[keep] for t in (active, u, r, p, rz, limit))
            levels = [level.subset(keep) for level in levels]
        ap = degree * p - neighbour_sum(p) * levels[0].mask  # p is zero off the removed pixels
        alpha = _safe_ratio(rz, _dot(p, ap))
        u, r = u + alpha * p, r - alpha * ap
        z = v_cycle(levels, r)
        rz_next = _dot(r, z)
        p, rz = z + _safe_ratio(rz_next, rz) * p, rz_next
    return known + solution * mask


def noisy_linear_imputation(
    images: torch.Tensor,
    removed: torch.Tensor,
    noise: float,
    generator: torch.Generator | None = None,
    tol: float = 1e-5,
    max_iter: int = 200,
) -> torch.Tensor:
    """:func:`linear_imputation` plus ``noise`` x N(0, 1) on each removed pixel and channel (ROAD's imputer)."""
    imputed = linear_imputation(images, removed, tol=tol, max_iter=max_iter)
    if noise == 0:
        return imputed
    draw = torch.randn(images.shape, generator=generator, dtype=images.dtype, device=images.device)
    return imputed + noise * draw * removed[:, None].to(images.dtype)
