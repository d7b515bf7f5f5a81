"""Run one saliency method over a set of images in batches."""

from __future__ import annotations

import sys

import torch
from torch import nn
from tqdm import tqdm

from .methods.base import Method


def pixels(images: torch.Tensor) -> torch.Tensor:
    """Pixel-space floats in [0, 1]: uint8 ``images`` scaled (in a new tensor), float ones as they are."""
    return images.float().div_(255) if images.dtype == torch.uint8 else images


def compute_maps(
    method: Method,
    model: nn.Module,
    images: torch.Tensor,
    targets: torch.Tensor,
    batch_size: int,
    progress: bool = True,
    device: str | torch.device | None = None,
) -> torch.Tensor:
    """Maps ``[N,H,W]`` float32 on the CPU for ``images [N,C,H,W]`` and ``targets [N]``.

    ``images`` are floats in [0, 1] or uint8 (scaled per batch, so a data set never sits on the device
    as floats at once). Each batch moves to ``device`` (default: the images' device); its maps are
    copied to the CPU once, at the end of the batch.
    """
    device = torch.device(device) if device is not None else images.device
    n = images.shape[0]
    maps: list[torch.Tensor] = []
    starts = range(0, n, batch_size)
    for start in tqdm(starts, desc=method.name, unit="batch", file=sys.stderr) if progress else starts:
        x = pixels(images[start : start + batch_size].to(device))
        batch = method.attribute(model, x, targets[start : start + batch_size].to(device))
        maps.append(batch.detach().to("cpu", torch.float32))
    if len(maps) == 1:  # one batch: no copy
        return maps[0].contiguous()
    return torch.cat(maps) if maps else torch.empty((0, *images.shape[-2:]), dtype=torch.float32)
