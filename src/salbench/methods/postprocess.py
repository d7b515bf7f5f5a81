"""Explicit, recorded post-processing: channel reduction and upsampling of layer maps."""

from __future__ import annotations

import torch
import torch.nn.functional as F

CHANNEL_REDUCTIONS = ("sum", "abs_sum", "max_abs", "l2")
UPSAMPLE_MODES = ("bilinear", "bicubic", "nearest")


def reduce_channels(attribution: torch.Tensor, how: str) -> torch.Tensor:
    """``[B,C,H,W]`` -> ``[B,H,W]``: signed sum, sum of abs, max of abs (Simonyan et al. 2014) or L2 norm."""
    if how == "sum":
        return attribution.sum(dim=1)
    if how == "abs_sum":
        return attribution.abs().sum(dim=1)
    if how == "max_abs":
        return attribution.abs().amax(dim=1)
    if how == "l2":
        return attribution.pow(2).sum(dim=1).sqrt()
    raise ValueError(f"unknown channel_reduction {how!r}; allowed: {', '.join(CHANNEL_REDUCTIONS)}")


def upsample(maps: torch.Tensor, size: tuple[int, int], mode: str) -> torch.Tensor:
    """``[B,h,w]`` layer maps -> ``[B,H,W]`` by ``mode`` interpolation (align_corners=False)."""
    if mode not in UPSAMPLE_MODES:
        raise ValueError(f"unknown upsample mode {mode!r}; allowed: {', '.join(UPSAMPLE_MODES)}")
    if tuple(maps.shape[-2:]) == tuple(size):
        return maps
    kwargs = {} if mode == "nearest" else {"align_corners": False}
    return F.interpolate(maps.unsqueeze(1), size=size, mode=mode, **kwargs).squeeze(1)
