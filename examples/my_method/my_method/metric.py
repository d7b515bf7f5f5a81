"""Map entropy: how spread out a saliency map is (lower: more concentrated evidence).

The Shannon entropy of the map's absolute values normalised to sum to one, divided by the entropy of a
uniform map (log of the pixel count), so 0 is one pixel and 1 is uniform; in the spirit of Chalasani et
al. (2020)'s complexity. An all-zero map scores NaN (no distribution).
"""

from __future__ import annotations

import numpy as np
import torch

from salbench.metrics import Metric, ScoringBatch


class MapEntropy(Metric):
    """Normalised entropy of |map| (0: one pixel, 1: uniform; example plugin)."""

    citation = "Chalasani et al. 2020 (complexity as entropy), salbench plugin example"
    higher_is_better = False

    def score(self, batch: ScoringBatch) -> np.ndarray:
        flat = batch.maps.abs().reshape(batch.maps.shape[0], -1).to(torch.float64)
        total = flat.sum(dim=1, keepdim=True)
        p = flat / total
        entropy = -(p * torch.log(p.clamp_min(1e-300))).sum(dim=1) / np.log(flat.shape[1])
        entropy[total[:, 0] == 0] = float("nan")
        return entropy.cpu().numpy()
