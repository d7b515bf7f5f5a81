"""Faithfulness metrics that perturb the input along the map: deletion (Petsiuk et al., BMVC 2018)."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from ..params import ParamError, check_choice
from .base import Metric, ScoringBatch, register_metric

BASELINES = ("mean", "black")


def baseline_colour(model: nn.Module, baseline: str, like: torch.Tensor) -> torch.Tensor:
    """``[1,C,1,1]`` pixel-space fill colour: the model's normalisation mean (``"mean"``) or 0 (``"black"``)."""
    check_choice("metric", "deletion", "baseline", baseline, BASELINES)
    if baseline == "black":
        return torch.zeros((1, like.shape[1], 1, 1), dtype=like.dtype, device=like.device)
    mean = getattr(model, "mean", None)
    if not isinstance(mean, torch.Tensor):
        raise ParamError("deletion baseline 'mean' needs a model with a 'mean' buffer (NormalizedClassifier)")
    return mean.to(device=like.device, dtype=like.dtype).reshape(1, -1, 1, 1).expand(1, like.shape[1], 1, 1)


def saliency_ranks(maps: torch.Tensor) -> torch.Tensor:
    """``[N,H*W]`` rank of each pixel by decreasing saliency (0 = most salient; ties in row-major order)."""
    flat = maps.reshape(maps.shape[0], -1)
    order = flat.argsort(dim=1, descending=True, stable=True)
    positions = torch.arange(flat.shape[1], device=flat.device).expand_as(order)
    return torch.empty_like(order).scatter_(1, order, positions)


def deletion_curves(
    model: nn.Module,
    images: torch.Tensor,
    maps: torch.Tensor,
    targets: torch.Tensor,
    steps: int,
    baseline: str = "mean",
    max_batch: int = 256,
) -> torch.Tensor:
    """Softmax probability of each item's target class after each deletion step, ``[N, steps+1]``.

    Step ``k`` replaces the ``k*H*W // steps`` most salient pixels (all channels) by the baseline colour;
    step 0 is the intact image, step ``steps`` the all-baseline image. All (item, step) inputs go through
    the model in chunks of at most ``max_batch`` under ``torch.inference_mode()``.
    """
    n, _, height, width = images.shape
    pixels = height * width
    fill = baseline_colour(model, baseline, images)
    ranks = saliency_ranks(maps.to(images.device))
    removed = torch.arange(steps + 1, device=images.device) * pixels // steps  # [steps+1]
    item = torch.arange(n, device=images.device).repeat_interleave(steps + 1)  # flat (item, step) pairs
    step = torch.arange(steps + 1, device=images.device).repeat(n)
    targets = targets.to(images.device)
    probs = []
    with torch.inference_mode():
        for start in range(0, item.numel(), max_batch):
            i, k = item[start : start + max_batch], step[start : start + max_batch]
            keep = (ranks[i] >= removed[k, None]).reshape(-1, 1, height, width)
            perturbed = torch.where(keep, images[i], fill)
            probs.append(model(perturbed).softmax(dim=1).gather(1, targets[i, None]).squeeze(1))
    return torch.cat(probs).reshape(n, steps + 1)


def trapezoid_auc(curves: torch.Tensor) -> torch.Tensor:
    """Area under ``[N, n+1]`` curves on [0, 1] by the trapezoid rule: ``(sum(a) - a_0/2 - a_n/2) / n``."""
    n = curves.shape[1] - 1
    return (curves.sum(dim=1) - curves[:, 0] / 2 - curves[:, -1] / 2) / n


@register_metric("deletion")
class Deletion(Metric):
    """Area under the target probability as the most salient pixels are removed first (Petsiuk et al. 2018)."""

    citation = (
        "Petsiuk, Das & Saenko. RISE: Randomized Input Sampling for Explanation of Black-box Models. "
        "BMVC 2018. arXiv:1806.07421"
    )
    #: the paper removes 224 px per step at 224 x 224, i.e. 224 steps (its bulk evaluation 224*8 px, 28 steps);
    #: the embedded default uses 16. "mean" fills with the normalisation mean (zero in normalised space, the
    #: RISE choice). RISE scores the predicted class; an item here scores its target, the explained class.
    defaults = {"steps": 16, "baseline": "mean", "max_batch": 256}
    needs_model = True
    higher_is_better = False

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        check_choice("metric", self.name, "baseline", self.params["baseline"], BASELINES)
        for key in ("steps", "max_batch"):
            if not isinstance(self.params[key], int) or self.params[key] < 1:
                raise ParamError(f"metric {self.name!r}: {key} must be a positive integer, got {self.params[key]!r}")

    def curves(self, batch: ScoringBatch) -> torch.Tensor:
        """The batch's deletion curves ``[N, steps+1]`` under this metric's parameters."""
        if batch.model is None:
            raise ValueError("deletion needs the model")
        p = self.params
        return deletion_curves(
            batch.model, batch.images, batch.maps, batch.targets, p["steps"], p["baseline"], p["max_batch"]
        )

    def score(self, batch: ScoringBatch) -> np.ndarray:
        return trapezoid_auc(self.curves(batch)).cpu().numpy().astype(np.float64)
