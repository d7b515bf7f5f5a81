"""Layer-wise relevance propagation (zennit): uniform epsilon and alpha-beta rules and two composites.

Relevance starts as the target logit and is passed down layer by layer. It is computed inside the
normalisation wrapper, at the network's own (normalised) input, where it is conserved; the pixel map is
that relevance summed over channels. Batch norm is merged into the preceding layer and residual additions
split in proportion to their summands (:func:`~salbench.methods.canonizers.lrp_canonizers`); every
activation use has its own module (:func:`~salbench.methods.hooks.separate_activations`). Activations pass
relevance unchanged, average pooling and residual sums redistribute it in proportion to their inputs
(zennit's ``layer_map_base``), max pooling passes it to the maximum. zennit loads when a composite is built.
"""

from __future__ import annotations

import abc
from typing import TYPE_CHECKING, Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from .base import ChannelMethod, check_number, normalisation, register_method
from .hooks import registered, separate_activations

if TYPE_CHECKING:
    from zennit.canonizers import Canonizer
    from zennit.core import Composite

#: a bound of the network's input: a tensor broadcast over the batch, a number, or None where unused
Bound = torch.Tensor | float | None
#: zennit's default stabiliser for the rules' denominators
STABILIZER = 1e-6

BACH_2015 = (
    "Bach, Binder, Montavon, Klauschen, Mueller & Samek. On Pixel-Wise Explanations for Non-Linear "
    "Classifier Decisions by Layer-Wise Relevance Propagation. PLOS ONE 10(7):e0130140, 2015"
)


def relevance(net: nn.Module, z: torch.Tensor, target: torch.Tensor, composite: Composite) -> torch.Tensor:
    """Relevance ``[B,C,H,W]`` at ``net``'s input ``z`` for the target logits, which start the propagation."""
    with separate_activations(net, z), registered(composite, net), torch.enable_grad():
        leaf = z.detach().requires_grad_()
        logits = net(leaf)
        start = F.one_hot(target, logits.shape[1]) * logits.detach()  # promoted to the logits' dtype
        (grad,) = torch.autograd.grad(logits, leaf, start)
    return grad.detach()


class LRPMethod(ChannelMethod):
    """An LRP variant: a zennit composite built with the network's canonizers and its normalised input bounds."""

    requires = ("propagation_rules",)
    libraries = ("zennit",)
    #: whether :meth:`composite` reads the input bounds (computed only then)
    uses_bounds: ClassVar[bool] = False

    @abc.abstractmethod
    def composite(self, canonizers: list[Canonizer], low: Bound, high: Bound) -> Composite:
        """The composite applying ``canonizers``; ``low``/``high`` bound the network's input (pixels 0 and 1,
        normalised; None unless :attr:`uses_bounds`)."""

    def attribute_channels(self, model: nn.Module, inputs: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        from .canonizers import lrp_canonizers

        net, mean, std = normalisation(model)
        z = (inputs.detach() - mean) / std
        low, high = ((0 - mean) / std, (1 - mean) / std) if self.uses_bounds else (None, None)
        return relevance(net, z, target, self.composite(lrp_canonizers(net), low, high))


def _uniform(rule: Any, canonizers: list[Canonizer]) -> Composite:
    """``rule`` on every convolution and linear layer, zennit's base map elsewhere, ``canonizers``."""
    from zennit.composites import LayerMapComposite, layer_map_base
    from zennit.types import Convolution

    layer_map = layer_map_base(STABILIZER) + [(Convolution, rule), (nn.Linear, rule)]
    return LayerMapComposite(layer_map=layer_map, canonizers=canonizers)


@register_method("lrp_epsilon")
class LRPEpsilon(LRPMethod):
    """LRP-epsilon on every layer: ``R_i = sum_j a_i w_ij / (z_j + eps sign(z_j)) R_j`` (Bach et al. 2015)."""

    citation = BACH_2015
    #: a small stabiliser (the paper treats epsilon as free; larger values absorb weak, contradictory relevance)
    defaults = {"epsilon": 0.01, "channel_reduction": "sum"}

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        check_number(self, "epsilon", 0.0)

    def composite(self, canonizers: list[Canonizer], low: Bound, high: Bound) -> Composite:
        from zennit.rules import Epsilon

        return _uniform(Epsilon(epsilon=self.params["epsilon"]), canonizers)


@register_method("lrp_alpha1_beta0")
class LRPAlpha1Beta0(LRPMethod):
    """LRP-alpha1-beta0 on every layer: only positive contributions carry relevance (Bach et al. 2015)."""

    citation = BACH_2015
    defaults = {"channel_reduction": "sum"}

    def composite(self, canonizers: list[Canonizer], low: Bound, high: Bound) -> Composite:
        from zennit.rules import AlphaBeta

        return _uniform(AlphaBeta(alpha=1.0, beta=0.0, stabilizer=STABILIZER), canonizers)


@register_method("lrp_alpha2_beta1")
class LRPAlpha2Beta1(LRPMethod):
    """LRP-alpha2-beta1 on every layer: ``2 x`` positive minus ``1 x`` negative shares (Bach et al. 2015)."""

    citation = BACH_2015
    defaults = {"channel_reduction": "sum"}

    def composite(self, canonizers: list[Canonizer], low: Bound, high: Bound) -> Composite:
        from zennit.rules import AlphaBeta

        return _uniform(AlphaBeta(alpha=2.0, beta=1.0, stabilizer=STABILIZER), canonizers)


@register_method("lrp_epsilon_plus_flat")
class LRPEpsilonPlusFlat(LRPMethod):
    """zennit's EpsilonPlusFlat: flat rule at the first layer, z+ on convolutions, epsilon on dense layers.

    The composite recommended by Kohlbrenner et al. (2020); zennit's epsilon (1e-6).
    """

    citation = (
        "Kohlbrenner, Bauer, Nakajima, Binder, Samek & Lapuschkin. Towards Best Practice in Explaining "
        "Neural Network Decisions with LRP. IJCNN 2020. arXiv:1910.09840"
    )
    defaults = {"epsilon": 1e-6, "channel_reduction": "sum"}

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        check_number(self, "epsilon", 0.0)

    def composite(self, canonizers: list[Canonizer], low: Bound, high: Bound) -> Composite:
        from zennit.composites import EpsilonPlusFlat

        return EpsilonPlusFlat(epsilon=self.params["epsilon"], stabilizer=STABILIZER, canonizers=canonizers)


@register_method("lrp_epsilon_gamma_box")
class LRPEpsilonGammaBox(LRPMethod):
    """zennit's EpsilonGammaBox: z^B (box) rule at the first layer, gamma on convolutions, epsilon on dense layers.

    The box is the pixel range [0, 1] mapped through the model's normalisation; gamma = 0.25 as in
    Montavon et al. (2019).
    """

    citation = (
        "Montavon, Binder, Lapuschkin, Samek & Mueller. Layer-Wise Relevance Propagation: An Overview. "
        "In Explainable AI: Interpreting, Explaining and Visualizing Deep Learning, LNCS 11700, 2019"
    )
    defaults = {"epsilon": 1e-6, "gamma": 0.25, "channel_reduction": "sum"}
    uses_bounds = True

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        check_number(self, "epsilon", 0.0)
        check_number(self, "gamma", 0.0)

    def composite(self, canonizers: list[Canonizer], low: Bound, high: Bound) -> Composite:
        from zennit.composites import EpsilonGammaBox

        return EpsilonGammaBox(
            low=low, high=high, epsilon=self.params["epsilon"], gamma=self.params["gamma"],
            stabilizer=STABILIZER, canonizers=canonizers,
        )
