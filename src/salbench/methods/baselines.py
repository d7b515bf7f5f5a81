"""Reference inputs for path and difference methods (integrated gradients, DeepLIFT), in pixel space.

* ``black``: zeros in pixel space (Sundararajan et al. 2017's black image).
* ``zero_normalised``: the model's mean colour, i.e. zero in the network's normalised input space.
* ``blur``: the input blurred by a Gaussian of ``blur_sigma`` pixels (Fong & Vedaldi 2017; Sturmfels,
  Lundberg & Lee, "Visualizing the Impact of Feature Attribution Baselines", Distill 2020).
* ``uniform``: uniform noise in [0, 1), seeded per item (Sturmfels et al. 2020).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .base import normalisation
from .sampling import RowSampler

BASELINES = ("black", "zero_normalised", "blur", "uniform")


def gaussian_blur(images: torch.Tensor, sigma: torch.Tensor, max_sigma: float) -> torch.Tensor:
    """Blur each image of ``[N,C,H,W]`` by its own Gaussian std ``sigma[N]`` (pixels, in (0, ``max_sigma``]).

    One separable depthwise convolution for the whole batch with replicated borders; every kernel is
    truncated at ``ceil(3 * max_sigma)`` pixels, so an image's blur does not depend on its batch.
    """
    n, c, h, w = images.shape
    radius = max(1, math.ceil(3 * max_sigma))
    offsets = torch.arange(-radius, radius + 1, device=images.device, dtype=images.dtype)
    kernel = torch.exp(-(offsets[None, :] ** 2) / (2 * sigma.to(images)[:, None] ** 2))
    kernel = (kernel / kernel.sum(dim=1, keepdim=True)).repeat_interleave(c, dim=0)  # [N*C, K]
    flat = F.pad(images.reshape(1, n * c, h, w), (radius, radius, radius, radius), mode="replicate")
    flat = F.conv2d(flat, kernel[:, None, None, :], groups=n * c)
    flat = F.conv2d(flat, kernel[:, None, :, None], groups=n * c)
    return flat.reshape(n, c, h, w)


def make_baseline(kind: str, model: nn.Module, inputs: torch.Tensor, seed: int, blur_sigma: float) -> torch.Tensor:
    """The ``kind`` baseline for each item of ``inputs`` (``[B,C,H,W]``, same dtype and device)."""
    x = inputs.detach()
    if kind == "black":
        return torch.zeros_like(x)
    if kind == "zero_normalised":
        _, mean, _ = normalisation(model)
        return torch.zeros_like(x) + mean
    if kind == "blur":
        return gaussian_blur(x, torch.full((x.shape[0],), float(blur_sigma)), blur_sigma)
    if kind == "uniform":
        items = torch.arange(x.shape[0], device=x.device)
        return RowSampler(x, seed).uniform(items, torch.zeros_like(items), tuple(x.shape[1:])).to(x)
    raise ValueError(f"unknown baseline {kind!r}; allowed: {', '.join(BASELINES)}")
