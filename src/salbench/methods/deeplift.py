"""DeepLIFT with the rescale rule (Shrikumar et al. 2017), by captum."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ..params import check_choice
from .base import ChannelMethod, check_number, register_method
from .baselines import BASELINES, make_baseline
from .hooks import separate_activations


@register_method("deeplift")
class DeepLIFT(ChannelMethod):
    """Contributions of ``x - x'`` to ``f(x) - f(x')`` by the rescale rule; they sum to that difference.

    captum's :class:`~captum.attr.DeepLift` (rescale on non-linearities, its max-pool rule), run with
    every activation use in its own out-of-place module, so torchvision ResNets' shared ReLU works.
    The reference ``x'`` is one of :data:`~salbench.methods.baselines.BASELINES` in pixel space.
    Summation to ``f(x) - f(x')`` is exact without max pooling; captum's max-pool rule (captum 0.9) loses
    part of the difference where the input's and the reference's pooled activations both vary (e.g. a
    ResNet stem's overlapping max pool behind a black reference, which is not zero after normalisation).
    """

    citation = (
        "Shrikumar, Greenside & Kundaje. Learning Important Features Through Propagating Activation "
        "Differences. ICML 2017. arXiv:1704.02685"
    )
    #: the paper's all-zero (black) reference
    defaults = {"baseline": "black", "seed": 0, "blur_sigma": 5.0, "channel_reduction": "sum"}
    libraries = ("captum",)

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        check_choice("method", self.name, "baseline", self.params["baseline"], BASELINES)
        check_number(self, "blur_sigma", 1e-6)

    def attribute_channels(self, model: nn.Module, inputs: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        from captum.attr import DeepLift

        p = self.params
        baseline = make_baseline(p["baseline"], model, inputs, p["seed"], p["blur_sigma"])
        with separate_activations(model, inputs), torch.enable_grad():
            x = inputs.detach().requires_grad_()
            return DeepLift(model).attribute(x, baselines=baseline, target=target).detach()
