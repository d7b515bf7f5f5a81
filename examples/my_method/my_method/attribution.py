"""Blurred gradient: the absolute input gradient, summed over colour channels and box-blurred.

A deliberately simple method for the plugin example: Simonyan et al. (2014)'s gradient map, smoothed over a
``kernel`` x ``kernel`` window so that neighbouring pixels share their evidence.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from salbench.methods import Method
from salbench.params import ParamError


class BlurredGradient(Method):
    """Absolute input gradient, channel-summed and box-blurred (example plugin)."""

    citation = "Simonyan et al. 2014 (gradient), blurred: salbench plugin example"
    defaults = {"kernel": 3}

    def __init__(self, **params) -> None:
        super().__init__(**params)
        kernel = self.params["kernel"]
        if isinstance(kernel, bool) or not isinstance(kernel, int) or kernel < 1 or kernel % 2 == 0:
            raise ParamError(f"method {self.name!r}: kernel must be an odd integer >= 1, got {kernel!r}")

    def attribute(self, model: nn.Module, inputs: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        inputs = inputs.detach().clone().requires_grad_(True)
        logits = model(inputs)
        (grad,) = torch.autograd.grad(logits.gather(1, target[:, None]).sum(), inputs)
        saliency = grad.abs().sum(dim=1, keepdim=True)
        kernel = self.params["kernel"]
        blurred = F.avg_pool2d(saliency, kernel, stride=1, padding=kernel // 2, count_include_pad=False)
        return blurred[:, 0].to(torch.float32)
