"""Class sensitivity on two-object images, and the random-logit test.

*Class sensitivity*: on an image showing objects of two classes (the ``shapes_pair`` data set gives each
image as two items, one per present class), a class-discriminative explanation must give different
maps for the two classes and each map should point at its own object: the map's maximum hits the
item's own mask (pointing game of Zhang et al., "Top-down Neural Attention by Excitation Backprop",
ECCV 2016 / IJCV 2018) rather than the other object's.

*Random logit*: Sixt, Granz & Landgraf, "When Explanations Lie: Why Many Modified BP Attributions
Fail", ICML 2020 (arXiv:1912.09818), as implemented by Quantus' ``RandomLogit`` (Hedström et al.,
JMLR 2023): the similarity between the map for the target class and the map for a random other
class, low for class-sensitive methods. Quantus draws the other class uniformly among the non-target
classes with ``np.random.seed(seed)`` per batch and compares max-normalised maps with SSIM; here the
classes are drawn from one seeded generator over all items (so batching does not change them) and the
maps are compared with any :class:`~.similarity.Similarity` measure (SSIM by default).
"""

from __future__ import annotations

from collections import defaultdict
from typing import Sequence

import numpy as np
import torch
from torch import nn

from ..methods.base import Method
from ..metrics.base import create_metric
from ..metrics.localisation import pointing_hits
from ..saliency import compute_maps
from .similarity import Similarity


def pair_partners(image_ids: Sequence[str]) -> torch.Tensor:
    """``[N]`` index of the other item of the same image; every image must have exactly two items."""
    groups: dict[str, list[int]] = defaultdict(list)
    for index, image in enumerate(image_ids):
        groups[image].append(index)
    partner = torch.empty(len(image_ids), dtype=torch.long)
    for image, members in groups.items():
        if len(members) != 2:
            raise ValueError(f"image {image!r} has {len(members)} items; class sensitivity needs exactly 2 per image")
        partner[members[0]], partner[members[1]] = members[1], members[0]
    return partner


def class_sensitivity(
    maps: torch.Tensor,
    masks: torch.Tensor,
    image_ids: Sequence[str],
    similarity: Similarity,
    measure: str = "spearman_abs",
    tolerance: float | None = None,
) -> dict[str, torch.Tensor]:
    """Per-item class-sensitivity statistics from the maps already computed for two-object items.

    ``maps [N,H,W]``, ``masks [N,H,W]`` (each item's own object) and ``image_ids`` (two items per image).
    Returns float64 ``[N]``: ``similarity`` between the maps for the image's two classes (``measure``),
    ``own_hit`` / ``other_hit``: the map's maximum within ``tolerance`` px of the item's own / the other
    object's mask (default: the pointing game's 15 px at 224 px, scaled), and ``hit_margin`` = own - other.
    """
    partner = pair_partners(image_ids).to(maps.device)
    masks = masks.to(maps.device)
    if tolerance is None:
        tolerance = create_metric("pointing_game").tolerance(*maps.shape[-2:])
    own = pointing_hits(maps, masks, tolerance).to(torch.float64)
    other = pointing_hits(maps, masks[partner], tolerance).to(torch.float64)
    pair_similarity = similarity.restrict(measure)(maps, maps[partner])[measure]
    return {"similarity": pair_similarity, "own_hit": own, "other_hit": other, "hit_margin": own - other}


def random_other_classes(targets: torch.Tensor, num_classes: int, seed: int) -> torch.Tensor:
    """``[N]`` classes drawn uniformly among the ``num_classes - 1`` non-target classes of each item (seeded)."""
    if num_classes < 2:
        raise ValueError("the random-logit test needs at least 2 classes")
    draw = torch.from_numpy(np.random.default_rng(seed).integers(0, num_classes - 1, targets.shape[0]))
    draw = draw.to(targets.device)
    return draw + (draw >= targets).long()


def random_logit(
    method: Method,
    model: nn.Module,
    images: torch.Tensor,
    targets: torch.Tensor,
    maps: torch.Tensor,
    num_classes: int,
    similarity: Similarity,
    measure: str = "ssim",
    seed: int = 42,
    batch_size: int = 32,
    device: str | torch.device | None = None,
) -> torch.Tensor:
    """Per-item similarity (float64 ``[N]``, CPU) of ``maps`` (for ``targets``) and the maps for a random other class.

    One extra pass of ``method`` for the classes of :func:`random_other_classes`.
    """
    others = compute_maps(method, model, images, random_other_classes(targets, num_classes, seed), batch_size,
                          progress=False, device=device)
    return similarity.restrict(measure)(maps.cpu(), others)[measure]
