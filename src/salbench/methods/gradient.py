"""Plain input gradients: vanilla gradient (Simonyan et al. 2014) and gradient x input (Shrikumar et al. 2016)."""

from __future__ import annotations

import torch
from torch import nn

from .base import ChannelMethod, register_method


def input_gradient(model: nn.Module, inputs: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Signed gradient ``d logit_target / d inputs``, ``[B,C,H,W]`` in the inputs' dtype.

    Computed by captum's :class:`~captum.attr.Saliency` (``abs=False``) on a fresh leaf, so the caller's
    tensor keeps its ``requires_grad`` and ``.grad``; parameters' ``.grad`` stay untouched.
    """
    from captum.attr import Saliency

    with torch.enable_grad():
        x = inputs.detach().requires_grad_()
        return Saliency(model).attribute(x, target=target, abs=False).detach()


@register_method("gradient")
class Gradient(ChannelMethod):
    """Gradient of the target logit w.r.t. the input pixels, reduced over channels (Simonyan et al. 2014)."""

    citation = (
        "Simonyan, Vedaldi & Zisserman. Deep Inside Convolutional Networks: Visualising Image "
        "Classification Models and Saliency Maps. ICLR Workshop 2014. arXiv:1312.6034"
    )
    #: the paper takes the max of |gradient| over colour channels
    defaults = {"channel_reduction": "max_abs"}
    libraries = ("captum",)

    def attribute_channels(self, model: nn.Module, inputs: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return input_gradient(model, inputs, target)


@register_method("input_x_gradient")
class InputTimesGradient(ChannelMethod):
    """Pixel-space input times its gradient, summed over channels (Shrikumar et al. 2016).

    The input is the pixel-space image, so black (0) is the implicit reference: this equals integrated
    gradients from a black baseline for a linear model. Computed by captum's
    :class:`~captum.attr.InputXGradient`.
    """

    citation = (
        "Shrikumar, Greenside, Shcherbina & Kundaje. Not Just a Black Box: Learning Important Features "
        "Through Propagating Activation Differences. arXiv:1605.01713, 2016"
    )
    #: a per-pixel contribution: the signed sum over channels keeps the contributions additive
    defaults = {"channel_reduction": "sum"}
    libraries = ("captum",)

    def attribute_channels(self, model: nn.Module, inputs: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        from captum.attr import InputXGradient

        with torch.enable_grad():
            x = inputs.detach().requires_grad_()
            return InputXGradient(model).attribute(x, target=target).detach()
