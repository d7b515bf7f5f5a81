"""AttnLRP (Achtibat et al., ICML 2024): layer-wise relevance propagation through attention, for ViTs.

One forward and one backward pass under the rules of :mod:`~salbench.methods.attnlrp_rules`, seeded with 1 at
the target logit, so the relevance ``z * dy_c/dz`` at the network's own (normalised) input ``z`` starts as the
logit, as in :mod:`~salbench.methods.lrp`. The map is that relevance summed over channels, signed (positive: for
the class). It is not conservative on the pixels alone: the class token and position embeddings (parameters)
keep their share, biases absorb theirs, and the softmax rule keeps the part its bias term takes (Prop. 3.1).
Written here, not through the authors' ``lxt`` package: ``lxt`` 2.1 patches ``torch.nn`` classes for the whole
process and does not import beside transformers 5 (its issue #47); its ViT recipe is the ``attention="cp"``
setting (see ``docs/fidelity.md``). ``../shared/references/transformer-methods.md`` §4.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..params import check_choice
from .attnlrp_rules import ATTENTION_FACTORS, attnlrp_rules
from .base import ChannelMethod, check_number, normalisation, register_method

ACHTIBAT_2024 = (
    "Achtibat, Vakilzadeh Hatefi, Dreyer, Jain, Wiegand, Lapuschkin & Samek. AttnLRP: Attention-Aware "
    "Layer-Wise Relevance Propagation for Transformers. ICML 2024, PMLR 235:135-168. arXiv:2402.05602"
)


def attnlrp_relevance(net: nn.Module, z: torch.Tensor, target: torch.Tensor, epsilon: float,
                      attention: str = "attnlrp") -> torch.Tensor:
    """Relevance ``[B,C,H,W]`` at ``net``'s input ``z`` for the ``target`` logits (see the module docstring)."""
    with attnlrp_rules(net, epsilon, attention), torch.enable_grad():
        leaf = z.detach().requires_grad_()
        logits = net(leaf)
        seed = F.one_hot(target, logits.shape[1]).to(logits.dtype)
        (grad,) = torch.autograd.grad(logits, leaf, seed)
    return leaf.detach() * grad


@register_method("attnlrp")
class AttnLRP(ChannelMethod):
    """AttnLRP: epsilon rule on linear layers, identity rule on GELU and on layer norm's scaling, the softmax's
    Taylor rule with bias and the uniform rule on the attention products (Achtibat et al. 2024)."""

    citation = ACHTIBAT_2024
    model_family = "vit"
    #: the paper's rules; ``epsilon``: the linear layers' epsilon, 0 as in the authors' ``lxt`` (its efficient
    #: form takes the plain gradient there; in gradient x input form nothing is divided, so eps only absorbs
    #: relevance and costs ~15 % of the pass); ``attention``: "attnlrp" (the paper) or "cp" (q and k detached,
    #: CP-LRP, as ``lxt`` 2.1 does for torchvision ViTs)
    defaults = {"epsilon": 0.0, "attention": "attnlrp", "channel_reduction": "sum"}

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        check_number(self, "epsilon", 0.0)
        check_choice("method", self.name, "attention", self.params["attention"], tuple(ATTENTION_FACTORS))

    def attribute_channels(self, model: nn.Module, inputs: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        net, mean, std = normalisation(model)
        z = (inputs.detach() - mean) / std
        return attnlrp_relevance(net, z, target, float(self.params["epsilon"]), self.params["attention"])
