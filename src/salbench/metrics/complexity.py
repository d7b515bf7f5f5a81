"""Complexity metrics: how concentrated a map is, from the map alone (no model, no mask).

Both follow Quantus 0.6's computation (cross-checked in the tests) except that Quantus scales the
maps by the largest |value| of the whole batch it is given, so an item's score depends on its batch
neighbours; here each map is scaled by its own largest |value| (Quantus with ``normalise_axes``
covering one item gives the same numbers).
"""

from __future__ import annotations

import numpy as np
import torch

from .base import Metric, ScoringBatch, register_metric

#: Quantus adds this to the scaled |map| before the Gini index (so an all-zero map scores 0)
GINI_OFFSET = 1e-7
#: Quantus' epsilon inside the logarithm of the entropy
ENTROPY_EPS = 1e-12


def scaled_magnitude(maps: torch.Tensor) -> torch.Tensor:
    """``[N,H*W]`` float64 ``|map| / max|map|`` per item (an all-zero map stays 0)."""
    x = maps.reshape(maps.shape[0], -1).double().abs()
    peak = x.max(dim=1, keepdim=True).values
    return torch.where(peak > 0, x / torch.where(peak > 0, peak, torch.ones_like(peak)), x)


def gini_index(values: torch.Tensor) -> torch.Tensor:
    """Gini index of each row of non-negative ``[N,P]``: ``sum_i (2i - P - 1) v_(i) / (P sum v)``, v sorted up."""
    n = values.shape[1]
    ordered = values.sort(dim=1).values
    weights = 2 * torch.arange(1, n + 1, dtype=values.dtype, device=values.device) - n - 1
    return (weights * ordered).sum(dim=1) / (n * ordered.sum(dim=1))


@register_metric("sparseness")
class Sparseness(Metric):
    """Gini index of the map's absolute values: 1 for a single pixel, 0 for a uniform map (Chalasani et al. 2020).

    Quantus' preprocessing: |map| scaled by its maximum, plus 1e-7 on every pixel, then the Gini index.
    """

    citation = (
        "Chalasani, Chen, Chowdhury, Wu & Jha. Concise Explanations of Neural Networks using Adversarial "
        "Training. ICML 2020, PMLR 119:1383-1391. arXiv:1810.06583 (as computed by Quantus' Sparseness)"
    )

    def score(self, batch: ScoringBatch) -> np.ndarray:
        return gini_index(scaled_magnitude(batch.maps) + GINI_OFFSET).cpu().numpy()


@register_metric("complexity")
class Complexity(Metric):
    """Entropy of the map's normalised absolute values: log(H*W) for a uniform map (Bhatt et al. 2020)."""

    citation = (
        "Bhatt, Weller & Moura. Evaluating and Aggregating Feature-based Model Explanations. IJCAI 2020, "
        "pp. 3016-3022. arXiv:2005.00631 (as computed by Quantus' Complexity)"
    )
    #: natural logarithm; p = |map| / sum |map|; -sum p log(p + 1e-12) as in Quantus; NaN for an all-zero map
    higher_is_better = False

    def score(self, batch: ScoringBatch) -> np.ndarray:
        x = batch.maps.reshape(batch.maps.shape[0], -1).double().abs()
        share = x / x.sum(dim=1, keepdim=True)
        return (-(share * torch.log(share + ENTROPY_EPS)).sum(dim=1)).cpu().numpy()
