"""Localisation metrics against ground-truth masks: the pointing game (Zhang et al. 2016/2018)."""

from __future__ import annotations

import numpy as np
import torch

from .base import Metric, ScoringBatch, register_metric


def pointing_hits(maps: torch.Tensor, masks: torch.Tensor, tolerance: float) -> torch.Tensor:
    """Per-item hit (1.0) or miss (0.0) of the map's maximum, NaN for an empty mask; ``[N]`` float32.

    The point is the first maximum of each ``[H,W]`` map in row-major order; it hits when a mask pixel
    lies within ``tolerance`` px (Euclidean, inclusive) of it.
    """
    n, height, width = maps.shape
    index = maps.reshape(n, -1).argmax(dim=1)
    py, px = (index // width)[:, None, None], (index % width)[:, None, None]
    ys = torch.arange(height, device=maps.device)[None, :, None]
    xs = torch.arange(width, device=maps.device)[None, None, :]
    near = (ys - py) ** 2 + (xs - px) ** 2 <= tolerance**2  # [N,H,W]
    masks = masks.bool()
    hit = (masks & near).reshape(n, -1).any(dim=1)
    has_mask = masks.reshape(n, -1).any(dim=1)
    return hit.to(torch.float32).masked_fill(~has_mask, float("nan"))


@register_metric("pointing_game")
class PointingGame(Metric):
    """Hit if the saliency maximum lies within 15 px (at 224 px) of the target's mask (Zhang et al. 2018)."""

    citation = (
        "Zhang, Bargal, Lin, Brandt, Shen & Sclaroff. Top-down Neural Attention by Excitation Backprop. "
        "ECCV 2016; IJCV 126:1084-1102, 2018. arXiv:1608.00507. Protocol as in TorchRay's PointingGame."
    )
    #: TorchRay's 15 px tolerance, defined for 224 px images and scaled with the shorter image side
    defaults = {"tolerance_px": 15, "reference_size": 224}
    needs_mask = True
    aggregate = "class_mean"

    def tolerance(self, height: int, width: int) -> float:
        """Tolerance in px for an ``height x width`` image."""
        return self.params["tolerance_px"] * min(height, width) / self.params["reference_size"]

    def score(self, batch: ScoringBatch) -> np.ndarray:
        if batch.masks is None:
            raise ValueError("pointing_game needs ground-truth masks")
        hits = pointing_hits(batch.maps, batch.masks, self.tolerance(*batch.maps.shape[-2:]))
        return hits.cpu().numpy().astype(np.float64)
