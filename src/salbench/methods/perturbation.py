"""Black-box perturbation maps: occlusion (Zeiler & Fergus 2014) and RISE (Petsiuk et al. 2018).

Both evaluate many perturbed copies of every item; all (item, perturbation) rows of a batch go through
the model together, ``max_batch`` rows per forward, and perturbations are built chunk by chunk so memory
stays bounded by ``max_batch`` images. The default of 64 rows suits a CPU, where larger chunks fall out
of the cache (Score-CAM on the demo CNN: 2.9 s at 32 rows, 5.2 s at 256, one thread); raise it on a GPU.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..params import check_choice
from .base import Method, check_number, normalisation, register_method
from .cam_family import chunked_logits, masked_inputs
from .runs import add_runs_


def mean_colour(model: nn.Module, inputs: torch.Tensor) -> torch.Tensor:
    """The model's normalisation mean as a pixel-space ``[1,C,1,1]`` colour (0 for an unwrapped model)."""
    _, mean, _ = normalisation(model)
    return torch.as_tensor(mean, dtype=inputs.dtype, device=inputs.device).expand(1, inputs.shape[1], 1, 1)


def window_masks(
    tops: torch.Tensor, lefts: torch.Tensor, window: tuple[int, int], size: tuple[int, int]
) -> torch.Tensor:
    """``[n,H,W]`` 0/1 masks of the ``window`` squares with the given top-left corners."""
    ys = torch.arange(size[0], device=tops.device)
    xs = torch.arange(size[1], device=tops.device)
    rows = (ys >= tops[:, None]) & (ys < tops[:, None] + window[0])
    cols = (xs >= lefts[:, None]) & (xs < lefts[:, None] + window[1])
    return (rows[:, :, None] & cols[:, None, :]).float()


def window_starts(size: int, window: int, stride: int, device: torch.device) -> torch.Tensor:
    """Window starts ``0, stride, ...`` until the image is covered; the last window may be clipped (as captum)."""
    return torch.arange(math.ceil((size - window) / stride) + 1, device=device) * stride


def coverage(starts: torch.Tensor, window: int, size: int) -> torch.Tensor:
    """``[size]``: how many of the 1-D windows starting at ``starts`` cover each position."""
    positions = torch.arange(size, device=starts.device)
    return ((positions >= starts[:, None]) & (positions < starts[:, None] + window)).sum(dim=0)


@register_method("occlusion")
class Occlusion(Method):
    """Target-logit drop when a ``window`` square (all channels) is replaced by the model's mean colour.

    Windows slide by ``stride`` until the image is covered (the last one clipped at the border, as in
    captum's ``Occlusion``); each pixel gets the mean drop over the windows covering it. The paper (Zeiler & Fergus
    2014) slides a grey square without fixing its size; window 16 / stride 8 are the recorded defaults.
    """

    citation = (
        "Zeiler & Fergus. Visualizing and Understanding Convolutional Networks. ECCV 2014. arXiv:1311.2901"
    )
    defaults = {"window": 16, "stride": 8, "max_batch": 64}

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        for name in ("window", "stride", "max_batch"):
            check_number(self, name, 1, integer=True)

    def attribute(self, model: nn.Module, inputs: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        x = inputs.detach()
        b, _, h, w = x.shape
        win = (min(self.params["window"], h), min(self.params["window"], w))
        stride = self.params["stride"]
        starts_y, starts_x = window_starts(h, win[0], stride, x.device), window_starts(w, win[1], stride, x.device)
        grid_t, grid_l = torch.meshgrid(starts_y, starts_x, indexing="ij")
        tops, lefts = grid_t.flatten(), grid_l.flatten()
        positions = tops.numel()
        base = mean_colour(model, x)
        clean = chunked_logits(model, x, self.params["max_batch"]).gather(1, target.view(-1, 1)).squeeze(1)
        total = x.new_zeros(b, h, w, dtype=torch.float32)
        for start in range(0, b * positions, self.params["max_batch"]):
            stop = min(start + self.params["max_batch"], b * positions)
            rows = torch.arange(start, stop, device=x.device)
            items, pos = rows // positions, rows % positions
            masks = window_masks(tops[pos], lefts[pos], win, (h, w)).to(x.dtype).unsqueeze(1)
            occluded = x.index_select(0, items) * (1 - masks) + base * masks
            with torch.no_grad():
                scores = model(occluded).gather(1, target.index_select(0, items).view(-1, 1)).squeeze(1)
            drops = (clean.index_select(0, items) - scores).float()
            add_runs_(total, start, stop, positions, drops[:, None, None] * masks.squeeze(1).float())
        # the windows form a grid: a pixel's window count is its row count times its column count
        counts = coverage(starts_y, win[0], h)[:, None] * coverage(starts_x, win[1], w)[None, :]
        return total / counts


def rise_masks(
    grids: torch.Tensor, shifts: torch.Tensor, cell: tuple[int, int], size: tuple[int, int]
) -> torch.Tensor:
    """``[n,H,W]`` RISE masks: binary ``s x s`` grids upsampled bilinearly to ``(s+1) * cell``, shifted, cropped."""
    s = grids.shape[-1]
    up = F.interpolate(grids.unsqueeze(1), size=((s + 1) * cell[0], (s + 1) * cell[1]), mode="bilinear",
                       align_corners=False).squeeze(1)
    ys = shifts[:, 0, None] + torch.arange(size[0], device=grids.device)
    xs = shifts[:, 1, None] + torch.arange(size[1], device=grids.device)
    rows = up.gather(1, ys[:, :, None].expand(-1, -1, up.shape[2]))
    return rows.gather(2, xs[:, None, :].expand(-1, size[0], -1))


#: what RISE weights each mask by: the model's own probability (its spec), softmax, sigmoid or the logit
RISE_SCORES = ("probability", "softmax", "sigmoid", "logit")


@register_method("rise")
class RISE(Method):
    """Randomized Input Sampling for Explanation (Petsiuk, Das & Saenko 2018).

    ``N`` random binary ``s x s`` grids (keep probability ``p``, drawn from a generator seeded by ``seed``,
    identical for every item), upsampled bilinearly to ``(s+1)`` cells, randomly shifted by up to one cell
    and cropped; saliency ``= sum_i P_c(x * M_i) M_i / (N p)`` with ``P_c`` the target's probability the way
    the model was trained (``score="probability"``, keyed by its spec: softmax for cross-entropy models, as the
    paper; sigmoid for BCE-trained CoDA-Nets, as the CoDA authors' RISE wrapper ``explainers/rise.py`` reads
    ``trainer.predict``), or explicitly its ``softmax``, ``sigmoid`` or logit. Masks multiply the normalised input
    (``baseline="mean"``, masked-out = mean colour, as TorchRay does) or the pixel input (``"black"``).
    Paper: N = 4000 (VGG16) / 8000 (ResNet50), s = 7, p = 0.5; the default N = 8000 is TorchRay's.
    """

    citation = (
        "Petsiuk, Das & Saenko. RISE: Randomized Input Sampling for Explanation of Black-box Models. "
        "BMVC 2018. arXiv:1806.07421"
    )
    defaults = {"n_masks": 8000, "cells": 7, "p": 0.5, "seed": 0, "score": "probability", "baseline": "mean",
                "max_batch": 64}

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        for name in ("n_masks", "cells", "max_batch"):
            check_number(self, name, 1, integer=True)
        check_number(self, "p", 0.0)
        check_number(self, "seed", 0, integer=True)
        check_choice("method", self.name, "score", self.params["score"], RISE_SCORES)
        check_choice("method", self.name, "baseline", self.params["baseline"], ("mean", "black"))

    def attribute(self, model: nn.Module, inputs: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        x = inputs.detach()
        b, _, h, w = x.shape
        n, s, p = self.params["n_masks"], self.params["cells"], float(self.params["p"])
        cell = (math.ceil(h / s), math.ceil(w / s))
        generator = torch.Generator().manual_seed(self.params["seed"])
        grids = (torch.rand(n, s, s, generator=generator) < p).float()
        shifts = torch.stack([torch.randint(0, cell[0], (n,), generator=generator),
                              torch.randint(0, cell[1], (n,), generator=generator)], dim=1)
        score = self.params["score"]
        if score == "probability":
            score = getattr(getattr(model, "spec", None), "probability", "softmax")
        per_chunk = max(1, self.params["max_batch"] // b)
        saliency = x.new_zeros(b, h, w, dtype=torch.float32)
        for start in range(0, n, per_chunk):
            chunk = slice(start, start + per_chunk)
            masks = rise_masks(grids[chunk].to(x.device), shifts[chunk].to(x.device), cell, (h, w))
            rows = masked_inputs(model, x, masks.to(x.dtype).expand(b, -1, -1, -1), self.params["baseline"])
            logits = chunked_logits(model, rows.flatten(0, 1), self.params["max_batch"]).view(b, masks.shape[0], -1)
            if score == "softmax":
                logits = logits.softmax(dim=2)
            elif score == "sigmoid":
                logits = logits.sigmoid()
            scores = logits.gather(2, target.view(-1, 1, 1).expand(-1, masks.shape[0], 1)).squeeze(2).float()
            saliency += torch.einsum("bn,nhw->bhw", scores, masks)
        return saliency / (n * p)
