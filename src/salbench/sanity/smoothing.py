"""Smoothed randomisation cascades for sMPRT (Hedström et al., xAI 2024; newer-checks.md §2).

Each model state's map is averaged over ``n_samples`` noisy copies of the input, ``x + eps_n`` with
``eps_n ~ N(0, sigma^2 I)``, ``sigma = noise_magnitude * (max x - min x)`` per item (Smilkov et al.'s noise
level, as in :mod:`salbench.methods.noise`), the last sample clean (``eps_N = 0``, so one sample is the
plain map). The clean sample of every stage is the cascade's own map, which the sanity job already has: only
the ``n_samples - 1`` noisy copies cost explanation passes. The maps are accumulated as Quantus' ``SmoothMPRT``
does (``sum_n map_n / N`` in sample order, the clean one last), so without noise the two agree bitwise.

The noise is the project's counter-based draw (:class:`~salbench.methods.sampling.RowSampler`) keyed by the
seed, the item's content and the sample index: the same copies for every stage (common random numbers: two
stages' smoothed maps differ by the model alone), reproducible and independent of batching. (SmoothGrad's
:class:`~salbench.methods.noise.NoiseAggregate` is not reused as a whole: it averages a channel method's
attributions before their channel reduction and makes every sample noisy; sMPRT averages the method's maps.)
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from ..methods.base import Method
from ..methods.sampling import RowSampler
from ..saliency import compute_maps, pixels
from .checks.randomisation import ORDERS
from .randomisation import Block, randomised_stages


def noise_scale(images: torch.Tensor, noise_magnitude: float) -> torch.Tensor:
    """Per item ``[N]``: ``noise_magnitude * (max - min)`` of its pixel values (Quantus' per-sample ``std``)."""
    flat = images.flatten(1)
    return noise_magnitude * (flat.amax(1) - flat.amin(1))


def noisy_inputs(x: torch.Tensor, sigma: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    """``x + sigma * noise`` summed in float64 and rounded once to ``x``'s dtype (as Quantus adds float64 noise)."""
    return torch.addcmul(x.double(), sigma.double(), noise.double()).to(x.dtype)


def smoothed_stage_maps(
    method: Method,
    model: nn.Module,
    images: torch.Tensor,
    targets: torch.Tensor,
    clean: torch.Tensor,
    seed: int,
    n_samples: int,
    noise_magnitude: float,
    batchnorm: str = "reset",
    batch_size: int = 32,
    device: str | torch.device | None = None,
    blocks: Sequence[Block] | None = None,
    order: str = ORDERS[0],
) -> torch.Tensor:
    """Smoothed maps ``[S,N,H,W]`` (float32, CPU) of every stage of the cascading randomisation of ``order``.

    ``clean``: the cascade's maps ``[S,N,H,W]`` (:func:`~salbench.sanity.randomisation.stage_maps` with the
    same ``seed``, ``batchnorm``, ``blocks`` and ``order``), the last sample of every stage. The noisy copies
    of one sample for all items are evaluated together, as many samples per call as fit ``batch_size`` rows.
    """
    if n_samples < 1:
        raise ValueError(f"sMPRT needs at least one sample per map, got n_samples={n_samples}")
    x = pixels(images.to(device if device is not None else images.device))
    n, noisy = x.shape[0], n_samples - 1
    smoothed = torch.zeros_like(clean)
    if noisy:
        sigma = noise_scale(x, noise_magnitude).view(-1, 1, 1, 1)
        sampler = RowSampler(x, seed, n_samples=noisy)
        per_call = max(1, batch_size // n)
        example = x[:1].to(next(model.parameters()).device) if order != ORDERS[0] else None
        stages = randomised_stages(model, seed, "cascading", batchnorm, blocks, order, example)
        for k, (_, stage) in enumerate(stages):
            for first in range(0, noisy, per_call):
                samples = torch.arange(first, min(first + per_call, noisy), device=x.device)
                rows_item = torch.arange(n, device=x.device).repeat(len(samples))
                rows_sample = samples.repeat_interleave(n)
                noise = sampler.normal(rows_item, rows_sample, tuple(x.shape[1:]))
                copies = noisy_inputs(x.repeat(len(samples), 1, 1, 1), sigma.repeat(len(samples), 1, 1, 1), noise)
                maps = compute_maps(method, stage, copies, targets.repeat(len(samples)), batch_size, progress=False,
                                    device=device)
                for sample_maps in maps.view(len(samples), n, *maps.shape[1:]):
                    smoothed[k] += sample_maps / n_samples
    return smoothed.add_(clean / n_samples)
