"""Input sensitivity: the input-agnostic test.

Akhtar & Jalwana, "Rethinking Interpretation: Input-Agnostic Saliency Mapping of Deep Visual
Classifiers", AAAI 2023 (arXiv:2303.17836), call saliency *input-agnostic* when it describes a model
output independently of any particular input, and build such maps on purpose to show what a model has
learned about a class. A method that claims to explain one input fails when its maps are input-agnostic:
its map for an image should follow that image. We test it per item by comparing

- *within-image* similarity: the map of ``x`` against the map of ``x`` plus small Gaussian pixel noise
  (the same image, as the model sees it almost unchanged), and
- *cross-image* similarity: the map of ``x`` against the map of another image ``x'`` for the same
  target class (so a class template that ignores the image is caught too).

A method is input-agnostic when cross-image similarity is as high as within-image similarity: the
per-item statistic is ``gap = within - cross``, near 0 for the centre-prior control (identical maps
everywhere) and for pure noise (no similarity anywhere), clearly positive for maps that follow the image.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from ..methods.base import Method
from ..saliency import compute_maps
from .similarity import Similarity


def noisy_images(images: torch.Tensor, std: float, seed: int) -> torch.Tensor:
    """``images`` plus Gaussian noise of ``std`` (drawn on the CPU from ``seed``), clipped to [0, 1]."""
    noise = torch.randn(images.shape, generator=torch.Generator().manual_seed(seed)).to(images.device)
    return (images.to(torch.float32) + std * noise).clamp(0.0, 1.0)


def partners(n: int, seed: int) -> torch.Tensor:
    """``[n]`` indices pairing each item with a different item: one random cycle through all items (``n >= 2``)."""
    if n < 2:
        raise ValueError("the cross-image comparison needs at least 2 items")
    cycle = torch.from_numpy(np.random.default_rng(seed).permutation(n))
    partner = torch.empty(n, dtype=torch.long)
    partner[cycle] = cycle.roll(-1)
    return partner


def input_sensitivity(
    method: Method,
    model: nn.Module,
    images: torch.Tensor,
    targets: torch.Tensor,
    maps: torch.Tensor,
    similarity: Similarity,
    measure: str = "spearman_abs",
    noise_std: float = 0.02,
    seed: int = 0,
    batch_size: int = 32,
    device: str | torch.device | None = None,
) -> dict[str, torch.Tensor]:
    """Per-item ``within``, ``cross`` and ``gap = within - cross`` similarity (float64 ``[N]``, CPU).

    ``maps [N,H,W]`` are ``method``'s maps of float pixel ``images`` (computed once, shared with other
    checks); this adds one pass on the noisy images and one on the partner images with each item's
    own target. Only ``measure`` is computed, with ``similarity``'s settings.
    """
    similarity = similarity.restrict(measure)
    float_images = images.to(torch.float32)
    noisy = compute_maps(method, model, noisy_images(float_images, noise_std, seed), targets, batch_size,
                         progress=False, device=device)
    others = compute_maps(method, model, float_images[partners(images.shape[0], seed).to(images.device)], targets,
                          batch_size, progress=False, device=device)
    reference = similarity.prepare(maps.cpu())
    within = similarity.compare(reference, similarity.prepare(noisy))[measure]
    cross = similarity.compare(reference, similarity.prepare(others))[measure]
    return {"within": within, "cross": cross, "gap": within - cross}
