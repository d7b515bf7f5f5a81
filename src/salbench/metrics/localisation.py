"""Localisation metrics against ground-truth masks.

Every metric here gives NaN for an item whose mask is empty (nothing to localise), works per item (no
batch-wide normalisation) and computes in float64.

- ``pointing_game``: Zhang et al. 2016/2018, TorchRay's protocol (15 px tolerance, class-mean).
- ``pointing_game_quantus``: the tolerance-free per-item variant Quantus implements.
- ``energy_pointing_game``: Wang et al., Score-CAM, 2020.
- ``relevance_mass`` / ``relevance_rank``: Arras, Osman & Samek, CLEVR-XAI, 2022.
- ``miou``: IoU of the mask with the map thresholded over a sweep of thresholds (Choe et al. 2020).
- ``top_dice`` / ``top_iou`` / ``top_precision`` / ``top_sensitivity``: MDM's overlap of the top pixels.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import torch

from ..params import ParamError
from ..stats import min_max
from .base import Metric, ScoringBatch, register_metric, saliency_ranks


def flat(x: torch.Tensor) -> torch.Tensor:
    """``[N,H,W] -> [N,H*W]``."""
    return x.reshape(x.shape[0], -1)


def empty_as_nan(values: torch.Tensor, masks: torch.Tensor) -> np.ndarray:
    """Per-item ``values`` as float64 numpy, NaN where the item's mask is empty."""
    has_mask = flat(masks).any(dim=1)
    return values.double().masked_fill(~has_mask, float("nan")).cpu().numpy()


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


POINTING_CITATION = (
    "Zhang, Bargal, Lin, Brandt, Shen & Sclaroff. Top-down Neural Attention by Excitation Backprop. "
    "ECCV 2016; IJCV 126:1084-1102, 2018. arXiv:1608.00507."
)


@register_metric("pointing_game")
class PointingGame(Metric):
    """Hit if the saliency maximum lies within 15 px (at 224 px) of the target's mask (Zhang et al. 2018)."""

    citation = POINTING_CITATION + " Protocol as in TorchRay's PointingGame."
    #: TorchRay's 15 px tolerance, defined for 224 px images and scaled with the shorter image side
    defaults = {"tolerance_px": 15, "reference_size": 224}
    needs_mask = True
    aggregate = "class_mean"

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        self.check_number("tolerance_px", 0)
        self.check_number("reference_size", 1e-9)  # the image side the tolerance is defined at; divides it

    def tolerance(self, height: int, width: int) -> float:
        """Tolerance in px for an ``height x width`` image."""
        return self.params["tolerance_px"] * min(height, width) / self.params["reference_size"]

    def score(self, batch: ScoringBatch) -> np.ndarray:
        hits = pointing_hits(batch.maps, self.masks(batch), self.tolerance(*batch.maps.shape[-2:]))
        return hits.cpu().numpy().astype(np.float64)


@register_metric("pointing_game_quantus")
class PointingGameQuantus(Metric):
    """Hit if a maximum of the map lies inside the mask, no tolerance, mean over items (Quantus' variant)."""

    citation = POINTING_CITATION + " Variant as in Quantus' PointingGame (Hedström et al., JMLR 24(34), 2023)."
    #: differs from ``pointing_game`` (TorchRay) in three ways: no tolerance (the maximum itself must be on a
    #: mask pixel); with tied maxima it hits when any of them is on the mask (TorchRay takes the first);
    #: aggregated as a plain mean over items, not a mean over classes. (Quantus 0.6 turns an empty mask into
    #: a hit through a NaN cast to bool; here it gives NaN.)
    defaults = {}
    needs_mask = True

    def score(self, batch: ScoringBatch) -> np.ndarray:
        masks, maps = self.masks(batch), flat(batch.maps)
        at_max = maps == maps.max(dim=1, keepdim=True).values
        return empty_as_nan((at_max & flat(masks)).any(dim=1), masks)


def mass_inside(maps: torch.Tensor, masks: torch.Tensor, positive_only: bool) -> torch.Tensor:
    """Per item: relevance inside the mask over relevance in the image (float64); 0 when the total is 0.

    With ``positive_only`` negative relevance is set to 0 first.
    """
    relevance = flat(maps).double()
    if positive_only:
        relevance = relevance.clamp(min=0)
    inside = (relevance * flat(masks)).sum(dim=1)
    total = relevance.sum(dim=1)
    return torch.where(total != 0, inside / torch.where(total != 0, total, torch.ones_like(total)), 0.0)


@register_metric("energy_pointing_game")
class EnergyPointingGame(Metric):
    """Share of the map's positive energy that falls inside the target's mask (Wang et al., Score-CAM, 2020)."""

    citation = (
        "Wang, Wang, Du, Yang, Zhang, Ding, Mardziel & Hu. Score-CAM: Score-Weighted Visual Explanations for "
        "Convolutional Neural Networks. CVPR Workshops 2020. arXiv:1910.01279"
    )
    #: Score-CAM's maps are non-negative (ReLU); a signed map counts only its positive part. A map with no
    #: positive energy scores 0 (as CoDA's localisation code does). Score-CAM used boxes; masks here.
    defaults = {}
    needs_mask = True

    def score(self, batch: ScoringBatch) -> np.ndarray:
        masks = self.masks(batch)
        return empty_as_nan(mass_inside(batch.maps, masks, positive_only=True), masks)


ARRAS_CITATION = (
    "Arras, Osman & Samek. CLEVR-XAI: A benchmark dataset for the ground truth evaluation of neural network "
    "explanations. Information Fusion 81:14-40, 2022. arXiv:2003.07258"
)


@register_metric("relevance_mass")
class RelevanceMass(Metric):
    """Relevance inside the mask over the relevance in the whole image (Arras et al. 2022)."""

    citation = ARRAS_CITATION
    #: Arras et al. count positive relevance only (``positive_only: true``); Quantus 0.6's
    #: RelevanceMassAccuracy sums signed values (``positive_only: false``). A total of 0 scores 0.
    defaults = {"positive_only": True}
    needs_mask = True

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        if not isinstance(self.params["positive_only"], bool):
            raise ParamError(f"metric {self.name!r}: positive_only must be true or false")

    def score(self, batch: ScoringBatch) -> np.ndarray:
        masks = self.masks(batch)
        return empty_as_nan(mass_inside(batch.maps, masks, self.params["positive_only"]), masks)


@register_metric("relevance_rank")
class RelevanceRank(Metric):
    """Share of the K most relevant pixels inside the mask, K = mask size (Arras et al. 2022)."""

    citation = ARRAS_CITATION
    #: ties in relevance are ranked in row-major order (Quantus' unstable argsort breaks them arbitrarily)
    defaults = {}
    needs_mask = True

    def score(self, batch: ScoringBatch) -> np.ndarray:
        masks = flat(self.masks(batch))
        size = masks.sum(dim=1, keepdim=True)
        top = saliency_ranks(batch.maps) < size
        hits = (top & masks).sum(dim=1).double()
        return empty_as_nan(hits / size.squeeze(1).clamp(min=1), masks)


@register_metric("miou")
class MeanIoU(Metric):
    """Mean over thresholds t of IoU(mask, min-max-scaled map >= t), t = 1/(n+1) .. n/(n+1)."""

    citation = (
        "Threshold sweep as in Choe, Oh, Lee, Chun, Akata & Shim. Evaluating Weakly Supervised Object "
        "Localization Methods Right. CVPR 2020. arXiv:2001.07437"
    )
    #: 19 thresholds 0.05, 0.10, ..., 0.95 on the per-item min-max-scaled map (a constant map selects no pixel).
    #: Averaging over the sweep scores the map without picking a calibration threshold, as Choe et al. argue.
    defaults = {"n_thresholds": 19}
    needs_mask = True

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        self.check_number("n_thresholds", 1, integer=True)

    def thresholds(self, device: torch.device) -> torch.Tensor:
        n = self.params["n_thresholds"]
        return torch.arange(1, n + 1, dtype=torch.float64, device=device) / (n + 1)

    def score(self, batch: ScoringBatch) -> np.ndarray:
        masks = flat(self.masks(batch))
        scaled = min_max(flat(batch.maps).double())
        selected = scaled[:, None, :] >= self.thresholds(scaled.device)[None, :, None]  # [N,T,P]
        inter = (selected & masks[:, None]).sum(dim=2).double()
        union = (selected | masks[:, None]).sum(dim=2).double()
        return empty_as_nan((inter / union.clamp(min=1)).mean(dim=1), masks)


MDM_EPS = 1e-5


def top_overlap(maps: torch.Tensor, masks: torch.Tensor, percentiles: torch.Tensor) -> dict[str, torch.Tensor]:
    """MDM's overlap counts, ``[N, P]`` each: the map binarised as ``map >= percentile_p(map)`` against the mask.

    Returns ``dice``, ``iou``, ``precision`` (PPV) and ``sensitivity`` with MDM's smoothing epsilon 1e-5.
    The percentile interpolates linearly (numpy's default, which MDM's ``np.percentile`` uses).
    """
    x = flat(maps).double()
    cut = torch.quantile(x, percentiles.to(x) / 100, dim=1).T  # [N,P]
    selected = x[:, None, :] >= cut[:, :, None]  # [N,P,pixels]
    truth = flat(masks)[:, None, :]
    inter = (selected & truth).sum(dim=2).double()
    n_selected, n_truth = selected.sum(dim=2).double(), truth.sum(dim=2).double()
    return {
        "dice": (2 * inter + MDM_EPS) / (n_selected + n_truth + MDM_EPS),
        "iou": (inter + MDM_EPS) / (n_selected + n_truth - inter + MDM_EPS),
        "precision": (inter + MDM_EPS) / (n_selected + MDM_EPS),
        "sensitivity": (inter + MDM_EPS) / (n_truth + MDM_EPS),
    }


class TopOverlap(Metric):
    """MDM's overlap of the top (100-p) % pixels with the mask, averaged over the percentiles p."""

    citation = (
        "Peng, Yang, Liu & He. MDM: Multiple Dynamic Masks for Visual Explanation of Neural Networks. "
        "arXiv:2207.08046, 2022 (Evaluation_d_mask.py in github.com/ytpeng-tongji/MultipleDynamicMasks)"
    )
    #: MDM reports each p in 80..99 separately; the per-item value here is the mean over ``percentiles``
    #: (set ``percentiles: [90]`` for one of MDM's columns).
    defaults = {"percentiles": tuple(range(80, 100))}
    needs_mask = True
    quantity: ClassVar[str] = ""

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        ps = self.params["percentiles"]
        valid = [isinstance(p, (int, float)) and not isinstance(p, bool) and 0 <= p <= 100 for p in ps]
        if not valid or not all(valid):
            raise ParamError(f"metric {self.name!r}: percentiles must be numbers in [0, 100], got {ps!r}")

    def score(self, batch: ScoringBatch) -> np.ndarray:
        masks = self.masks(batch)
        percentiles = torch.tensor(self.params["percentiles"], dtype=torch.float64, device=masks.device)
        values = top_overlap(batch.maps, masks, percentiles)[self.quantity]
        return empty_as_nan(values.mean(dim=1), masks)


@register_metric("top_dice")
class TopDice(TopOverlap):
    """Dice of the top (100-p) % pixels of the map with the mask, mean over p = 80..99 (MDM)."""

    quantity = "dice"


@register_metric("top_iou")
class TopIoU(TopOverlap):
    """IoU of the top (100-p) % pixels of the map with the mask, mean over p = 80..99 (MDM)."""

    quantity = "iou"


@register_metric("top_precision")
class TopPrecision(TopOverlap):
    """Share of the top (100-p) % pixels of the map inside the mask (PPV), mean over p = 80..99 (MDM)."""

    quantity = "precision"


@register_metric("top_sensitivity")
class TopSensitivity(TopOverlap):
    """Share of the mask covered by the top (100-p) % pixels of the map, mean over p = 80..99 (MDM)."""

    quantity = "sensitivity"
