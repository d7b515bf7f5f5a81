"""Robustness metrics: how much a map changes when its input changes a little.

- ``max_sensitivity``: Yeh, Hsieh, Suggala, Inouye & Ravikumar, NeurIPS 2019 (Quantus ``MaxSensitivity``).

These re-run the saliency method on perturbed inputs, so they need the batch's ``method`` (the score job
builds it from the same name, parameters and layer as the saliency job).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from ..methods.sampling import RowSampler
from .base import Metric, ScoringBatch, register_metric


class LinfNoise:
    """``delta(i, k)``: uniform noise in the L-inf ball of ``radius``, one draw per (item, sample) row.

    Every pixel and channel of row ``(i, k)`` is ``radius * (2u - 1)``, ``u ~ U[0, 1)`` a counter-based draw
    from the item's content, ``seed`` and ``k`` (:class:`~salbench.methods.sampling.RowSampler`), made on the
    images' device, so the noise of an item never depends on its batch or the chunk size.
    """

    def __init__(self, images: torch.Tensor, seed: int, radius: float, n_samples: int) -> None:
        self.sampler = RowSampler(images, seed, n_samples=n_samples)
        self.shape, self.dtype = images.shape[1:], images.dtype
        self.radius = radius

    def __call__(self, items: torch.Tensor, samples: torch.Tensor) -> torch.Tensor:
        """``[B,C,H,W]`` noise of rows ``(items[b], samples[b])`` (both on the images' device)."""
        noise = self.sampler.uniform(items, samples, tuple(self.shape)).to(self.dtype)
        return noise.mul_(2).sub_(1).mul_(self.radius)


@register_metric("max_sensitivity")
class MaxSensitivity(Metric):
    """Largest relative map change ||Phi(x+d) - Phi(x)|| / ||Phi(x)|| over uniform input noise d (Yeh et al. 2019)."""

    citation = (
        "Yeh, Hsieh, Suggala, Inouye & Ravikumar. On the (In)fidelity and Sensitivity of Explanations. "
        "NeurIPS 2019. arXiv:1901.09392 (Quantus 0.6 MaxSensitivity)"
    )
    #: Quantus 0.6's defaults: 200 samples of uniform noise in [-0.2, 0.2] on every pixel and channel (no
    #: clipping to the pixel range), Frobenius norms of the map difference over the stored map's norm, no
    #: normalisation or abs of the maps, max over the samples. Phi(x) is the stored map; Phi(x + d) re-runs the
    #: method with its own parameters (a sampling method draws fresh noise for the new input, as Quantus'
    #: re-run of explain_func does). ``seed`` seeds the perturbations; ``max_batch`` caps the perturbed inputs
    #: handed to the method at once. An all-zero stored map cannot be scored (NaN).
    defaults = {"n_samples": 200, "radius": 0.2, "seed": 0, "max_batch": 32}
    needs_model = True
    needs_method = True
    higher_is_better = False

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        self.check_number("n_samples", 1, integer=True)
        self.check_number("radius", 0)
        self.check_number("seed", 0, integer=True)
        self.check_number("max_batch", 1, integer=True)

    def sensitivities(self, batch: ScoringBatch) -> torch.Tensor:
        """``[N, n_samples]`` float64 ``||Phi(x_i + d_ik) - Phi(x_i)|| / ||Phi(x_i)||`` (NaN where ``Phi(x_i) = 0``).

        All (item, sample) rows, item-major, go through the method in chunks of ``max_batch``.
        """
        p, images = self.params, batch.images
        method = self.method(batch)
        model = self.model(batch) if method.uses_model else batch.model
        device, n, samples = images.device, len(images), p["n_samples"]
        maps = batch.maps.to(device=device, dtype=torch.float64).reshape(n, -1)
        targets = batch.targets.to(device)
        noise = LinfNoise(images, p["seed"], p["radius"], samples)
        item = torch.arange(n, device=device).repeat_interleave(samples)
        sample = torch.arange(samples, device=device).repeat(n)
        changes = []
        for start in range(0, item.numel(), p["max_batch"]):
            i, k = item[start : start + p["max_batch"]], sample[start : start + p["max_batch"]]
            perturbed = method.attribute(model, images.index_select(0, i) + noise(i, k), targets[i])
            difference = perturbed.detach().to(torch.float64).reshape(len(i), -1) - maps.index_select(0, i)
            changes.append(torch.linalg.vector_norm(difference, dim=1))
        change = torch.cat(changes).reshape(n, samples) if changes else maps.new_zeros((n, samples))
        norm = torch.linalg.vector_norm(maps, dim=1, keepdim=True)
        return torch.where(norm > 0, change / torch.where(norm > 0, norm, torch.ones_like(norm)), torch.nan)

    def score(self, batch: ScoringBatch) -> np.ndarray:
        return self.sensitivities(batch).amax(dim=1).cpu().numpy().astype(np.float64)
