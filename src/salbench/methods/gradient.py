"""Plain input gradients: vanilla gradient (Simonyan et al. 2014) and gradient x input (Shrikumar et al. 2016)."""

from __future__ import annotations

import torch
from torch import nn

from .base import ChannelMethod, register_method


def input_gradient(model: nn.Module, inputs: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Signed gradient ``d logit_target / d inputs``, ``[B,C,H,W]`` in the inputs' dtype.

    One forward and one backward to the input on a fresh leaf, so the caller's tensor keeps its
    ``requires_grad`` and ``.grad``, and parameters' ``.grad`` stay untouched (``autograd.grad`` w.r.t. the
    input only). Bit for bit what captum's :class:`~captum.attr.Saliency` (``abs=False``) returns, without its
    per-call Python (which, on a GPU running a small model, costs as much as the kernels).
    """
    with torch.enable_grad():
        x = inputs.detach().requires_grad_()
        selected = model(x).gather(1, target.view(-1, 1).to(x.device))
        (grad,) = torch.autograd.grad(selected.sum(), x)
    return grad


@register_method("gradient")
class Gradient(ChannelMethod):
    """Gradient of the target logit w.r.t. the input pixels, reduced over channels (Simonyan et al. 2014)."""

    citation = (
        "Simonyan, Vedaldi & Zisserman. Deep Inside Convolutional Networks: Visualising Image "
        "Classification Models and Saliency Maps. ICLR Workshop 2014. arXiv:1312.6034"
    )
    #: the paper takes the max of |gradient| over colour channels
    defaults = {"channel_reduction": "max_abs"}

    def attribute_channels(self, model: nn.Module, inputs: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return input_gradient(model, inputs, target)


@register_method("input_x_gradient")
class InputTimesGradient(ChannelMethod):
    """Pixel-space input times its gradient, summed over channels (Shrikumar et al. 2016).

    The input is the pixel-space image, so black (0) is the implicit reference: this equals integrated
    gradients from a black baseline for a linear model. Bit for bit captum's :class:`~captum.attr.InputXGradient`.
    """

    citation = (
        "Shrikumar, Greenside, Shcherbina & Kundaje. Not Just a Black Box: Learning Important Features "
        "Through Propagating Activation Differences. arXiv:1605.01713, 2016"
    )
    #: a per-pixel contribution: the signed sum over channels keeps the contributions additive
    defaults = {"channel_reduction": "sum"}

    def attribute_channels(self, model: nn.Module, inputs: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return inputs.detach() * input_gradient(model, inputs, target)
