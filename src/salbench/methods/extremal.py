"""Extremal perturbations (Fong, Patrick & Vedaldi, ICCV 2019), preservation variant, TorchRay's defaults.

For each target area ``a`` a smooth mask ``m`` in [0, 1] maximises the target logit of the perturbed input
(``m = 1`` keeps a pixel, ``m = 0`` replaces it by its most blurred version, intermediate values pick
between levels of a blur pyramid), while the sorted mask is pulled towards the reference vector with a
fraction ``a`` of ones (the area constraint). All areas x items are optimised together.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..params import ParamError
from .base import Method, check_number, register_method


def gaussian_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur of ``[N,C,H,W]`` (kernel radius ``ceil(4 sigma)``, replicate borders)."""
    if sigma <= 0:
        return x
    radius = math.ceil(4 * sigma)
    taps = torch.arange(-radius, radius + 1, dtype=x.dtype, device=x.device)
    kernel = torch.exp(-(taps**2) / (2 * sigma**2))
    kernel = kernel / kernel.sum()
    c = x.shape[1]
    out = F.pad(x, (radius,) * 4, mode="replicate")
    out = F.conv2d(out, kernel.view(1, 1, -1, 1).expand(c, 1, -1, 1).contiguous(), groups=c)
    out = F.conv2d(out, kernel.view(1, 1, 1, -1).expand(c, 1, 1, -1).contiguous(), groups=c)
    return out


def blur_pyramid(x: torch.Tensor, levels: int, max_blur: float) -> torch.Tensor:
    """``[N,L,C,H,W]``: level ``l`` blurred with sigma ``max_blur * (1 - l / (L - 1))`` (last = the input)."""
    sigmas = torch.linspace(1, 0, levels).tolist() if levels > 1 else [0.0]
    return torch.stack([gaussian_blur(x, max_blur * s) for s in sigmas], dim=1)


def perturb(pyramid: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Preservation perturbation: per pixel, linear interpolation in the pyramid at level ``m * (L - 1)``."""
    levels = pyramid.shape[1]
    w = mask.clamp(0, 1) * (levels - 1)  # [N,1,H,W]
    k = w.detach().floor().clamp(max=levels - 1)
    frac = w - k
    k0 = k.long().unsqueeze(1).expand(-1, 1, pyramid.shape[2], -1, -1)
    k1 = (k0 + 1).clamp(max=levels - 1)
    y0 = pyramid.gather(1, k0).squeeze(1)
    y1 = pyramid.gather(1, k1).squeeze(1)
    return (1 - frac) * y0 + frac * y1


class SmoothMaskGenerator:
    """Smooth masks from a coarse parameter grid (step ``step`` px) by a (smooth) max of bumps of scale ``sigma``.

    ``m(u) = max_j p_j k(|u - u_j| / sigma)`` over grid points ``u_j = j * step`` within reach, with
    ``k(z) = exp(-2 max(z - 1/2, 0)^2)`` (TorchRay's kernel); ``smooth > 0`` replaces the max by the
    softmax-weighted mean with temperature ``smooth`` (our smooth max: TorchRay's exact smoothing was not
    consulted).
    """

    def __init__(self, size: tuple[int, int], step: int, sigma: float, smooth: float, device: torch.device) -> None:
        self.size, self.step, self.smooth = size, step, smooth
        self.grid = (math.ceil(size[0] / step) + 1, math.ceil(size[1] / step) + 1)
        self.reach = math.ceil(sigma / step) + 1
        ys = torch.arange(size[0], device=device)
        xs = torch.arange(size[1], device=device)
        self.indices, self.weights = [], []
        for dy in range(-self.reach, self.reach + 1):
            for dx in range(-self.reach, self.reach + 1):
                gy, gx = ys // step + dy, xs // step + dx
                dist = ((ys - gy * step).float()[:, None] ** 2 + (xs - gx * step).float()[None, :] ** 2).sqrt()
                self.weights.append(torch.exp(-2 * (dist / sigma - 0.5).clamp(min=0) ** 2))
                self.indices.append((gy + self.reach, gx + self.reach))

    def __call__(self, pmask: torch.Tensor) -> torch.Tensor:
        """``[N,1,gh,gw]`` parameters -> ``[N,1,H,W]`` mask."""
        padded = F.pad(pmask, (self.reach,) * 4)
        bumps = torch.stack(
            [padded[:, :, gy[:, None], gx[None, :]] * w for (gy, gx), w in zip(self.indices, self.weights)]
        )
        if self.smooth > 0:
            return (bumps * torch.softmax(bumps / self.smooth, dim=0)).sum(dim=0)
        return bumps.amax(dim=0)


@register_method("extremal_perturbation")
class ExtremalPerturbation(Method):
    """Preservation extremal perturbations (Fong et al. 2019), areas x items optimised jointly.

    Energy per (area a, item): ``-f_c(perturbed) + lambda_t * mean((sort(m) - r_a)^2)`` with ``r_a`` the
    sorted reference (a fraction ``a`` of ones), ``lambda_t = 300 * 1.0035^t``; SGD(lr 0.01, momentum 0.9,
    dampening 0.9) on the grid parameters (init 0.5, clamped to [0, 1] after each step), 800 iterations,
    horizontal flip of the perturbed input on every other iteration (``jitter``); blur pyramid of 8 levels
    up to sigma 20; generator step 7, sigma 21. Saliency = sum of the areas' masks (TorchRay's pointing
    benchmark, areas [0.025, 0.05, 0.1, 0.2], smooth 0.09).
    """

    citation = (
        "Fong, Patrick & Vedaldi. Understanding Deep Networks via Extremal Perturbations and Smooth Masks. "
        "ICCV 2019. arXiv:1910.08485"
    )
    defaults = {
        "areas": [0.025, 0.05, 0.1, 0.2],
        "max_iter": 800,
        "lr": 0.01,
        "regul_weight": 300.0,
        "regul_growth": 1.0035,
        "levels": 8,
        "max_blur": 20.0,
        "step": 7,
        "sigma": 21.0,
        "smooth": 0.09,
        "jitter": True,
        "max_batch": 256,
    }

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        check_number(self, "max_iter", 0, integer=True)
        for name in ("levels", "step", "max_batch"):
            check_number(self, name, 1, integer=True)
        for name in ("lr", "regul_weight", "regul_growth", "max_blur", "smooth"):
            check_number(self, name, 0.0)
        check_number(self, "sigma", 1e-6)
        areas = self.params["areas"]
        if not areas or not all(isinstance(a, (int, float)) and 0 < a <= 1 for a in areas):
            raise ParamError(f"method 'extremal_perturbation': areas must be fractions in (0, 1], got {areas!r}")

    def masks(self, model: nn.Module, inputs: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """``[A,B,H,W]`` optimised masks for every area x item."""
        p = self.params
        x = inputs.detach()
        b, _, h, w = x.shape
        areas = list(p["areas"])
        generator = SmoothMaskGenerator((h, w), p["step"], float(p["sigma"]), float(p["smooth"]), x.device)
        pyramid = blur_pyramid(x, p["levels"], float(p["max_blur"])).repeat(len(areas), 1, 1, 1, 1)
        rows_target = target.repeat(len(areas))
        keep = torch.tensor([round(h * w * a) for a in areas], device=x.device)
        reference = (torch.arange(h * w, device=x.device)[None, :] >= h * w - keep[:, None]).to(x.dtype)
        reference = reference.repeat_interleave(b, dim=0)  # [A*B, HW], sorted ascending
        pmask = x.new_full((len(areas) * b, 1, *generator.grid), 0.5).requires_grad_()
        optimiser = torch.optim.SGD([pmask], lr=p["lr"], momentum=0.9, dampening=0.9)
        weight = float(p["regul_weight"])
        for it in range(p["max_iter"]):
            with torch.enable_grad():
                mask = generator(pmask)
                perturbed = perturb(pyramid, mask)
                if p["jitter"] and it % 2 == 1:
                    perturbed = perturbed.flip(3)
                grad = torch.zeros_like(pmask)
                regul = weight * (mask.flatten(1).sort(dim=1).values - reference).pow(2).mean(dim=1)
                for start in range(0, perturbed.shape[0], p["max_batch"]):
                    rows = slice(start, start + p["max_batch"])
                    reward = model(perturbed[rows]).gather(1, rows_target[rows].view(-1, 1)).sum()
                    energy = regul[rows].sum() - reward
                    (part,) = torch.autograd.grad(energy, pmask, retain_graph=True)
                    grad += part
            pmask.grad = grad
            optimiser.step()
            with torch.no_grad():
                pmask.clamp_(0, 1)
            weight *= p["regul_growth"]
        with torch.no_grad():
            return generator(pmask).view(len(areas), b, h, w)

    def attribute(self, model: nn.Module, inputs: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return self.masks(model, inputs, target).sum(dim=0).to(torch.float32)
