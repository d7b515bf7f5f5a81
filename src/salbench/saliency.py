"""Run one saliency method over a set of images in batches."""

from __future__ import annotations

import sys

import torch
from torch import nn
from tqdm import tqdm

from .methods.base import Method


def compute_maps(
    method: Method,
    model: nn.Module,
    images: torch.Tensor,
    targets: torch.Tensor,
    batch_size: int,
    progress: bool = True,
) -> torch.Tensor:
    """Maps ``[N,H,W]`` float32 on the CPU for ``images [N,C,H,W]`` (on the compute device) and ``targets [N]``.

    Each batch runs on the images' device; its maps are copied to the CPU once, at the end of the batch.
    """
    targets = targets.to(images.device)
    n = images.shape[0]
    maps = [torch.empty((0, *images.shape[-2:]), dtype=torch.float32)]
    for start in tqdm(range(0, n, batch_size), desc=method.name, unit="batch", file=sys.stderr, disable=not progress):
        batch = method.attribute(model, images[start : start + batch_size], targets[start : start + batch_size])
        maps.append(batch.detach().to("cpu", torch.float32))
    return torch.cat(maps)
