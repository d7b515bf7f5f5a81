"""Relative Sectional Propagation (RSP, Nam, Choi & Lee, AAAI 2021) and its predecessor Relative Attributing
Propagation (RAP, Nam et al., AAAI 2020): bi-polar relevance, positive for the target, negative for the rest.

Both run inside the normalisation wrapper on the network's own input (as LRP does, :mod:`.lrp`), with the
propagation engine of :mod:`.relprop`; the pixel map is the input relevance summed over channels.

* **RAP** starts from the one-hot target output and propagates through the whole network, linear layers
  included: absolute influence normalisation at the output layer, activators and (inverted) inhibitors with a
  uniform shift at every hidden conv/linear layer, z^B at the input. The input relevances sum to the target
  logit.
* **RSP** starts at the target layer (the model spec's Grad-CAM layer) and propagates only the feature
  extractor below it. The start is the *relative* Grad-CAM of the target against the ``top_n - 1`` other
  highest-scoring classes (the hostile factor, :func:`relative_gradcam`), purged of channel conflicts
  (:func:`purge`); the convolutions propagate target and hostile relevance separately with comparative
  gradients, doubled and uniformly shifted (:func:`~.relprop.rsp_conv`).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .base import ChannelMethod, check_number, normalisation, register_method
from .cam import resolve_layer
from .relprop import (
    Propagation, absolute_influence, output_layer, per_item_sum, rap_weighted, recording, rsp_conv, safe_divide,
)

RAP_CITATION = (
    "Nam, Gur, Choi, Wolf & Lee. Relative Attributing Propagation: Interpreting the Comparative Contributions "
    "of Individual Units in Deep Neural Networks. AAAI 2020. arXiv:1904.00605"
)
RSP_CITATION = (
    "Nam, Choi & Lee. Interpreting Deep Neural Networks with Relative Sectional Propagation by Analyzing "
    "Comparative Gradients and Hostile Activations. AAAI 2021, 35(13):11604-11612. arXiv:2012.03434"
)


def _unit_mass(values: torch.Tensor) -> torch.Tensor:
    """Non-negative ``values`` scaled to sum 1 per item (all-zero items stay 0)."""
    return safe_divide(values, per_item_sum(values))


def relative_gradcam(cams: torch.Tensor) -> torch.Tensor:
    """RSP's class-discriminative start from unsummed Grad-CAMs ``[B, N, K, h, w]`` (index 0: the target).

    Each map is divided by its maximum (where positive); ``rel = (N-1) G_target - sum_others G_m``; then the
    negative rescaling: the positive part is scaled to sum 1 and the negative (hostile) part to sum -1, so
    both carry the same mass.
    """
    peaks = cams.flatten(2).amax(2)[:, :, None, None, None]
    cams = torch.where(peaks > 0, cams / torch.where(peaks > 0, peaks, torch.ones_like(peaks)), cams)
    rel = (cams.shape[1] - 1) * cams[:, 0] - cams[:, 1:].sum(1)
    return _unit_mass(rel.clamp(min=0)) - _unit_mass((-rel).clamp(min=0))


def purge(relevance: torch.Tensor) -> torch.Tensor:
    """RSP's purging of conflicting units: one channel-summed score per location, spread evenly over channels.

    ``s(i,j) = sum_k R(k,i,j)``; the target locations (``s > 0``) are scaled to sum 2, the hostile ones to
    sum -1, and every channel at ``(i,j)`` gets ``s(i,j) / K``, so no unit at a location contradicts it.
    """
    score = relevance.sum(1, keepdim=True)
    purged = 2 * _unit_mass(score.clamp(min=0)) - _unit_mass((-score).clamp(min=0))
    return purged.expand_as(relevance) / relevance.shape[1]


def _compared_classes(logits: torch.Tensor, target: torch.Tensor, top_n: int) -> torch.Tensor:
    """``[B, N]`` class indices: the target, then the ``N-1`` highest-scoring other classes."""
    n = min(top_n, logits.shape[1])
    others = logits.detach().scatter(1, target[:, None], float("-inf")).topk(n - 1, dim=1).indices
    return torch.cat([target[:, None], others], dim=1)


def unsummed_gradcams(logits: torch.Tensor, activations: torch.Tensor, classes: torch.Tensor) -> torch.Tensor:
    """``[B, N, K, h, w]``: ``A * mean_hw(dy_c / dA)`` per class column of ``classes`` (Grad-CAM, not summed
    over channels, no ReLU), as in RSP's code."""
    cams = []
    for column in classes.T:
        (grad,) = torch.autograd.grad(logits.gather(1, column[:, None]).sum(), activations, retain_graph=True)
        cams.append(activations.detach() * grad.mean(dim=(2, 3), keepdim=True))
    return torch.stack(cams, dim=1)


def _bounds(z: torch.Tensor, mean: torch.Tensor | float, std: torch.Tensor | float) -> tuple[torch.Tensor, ...]:
    """Images of pixel values 0 and 1 in the network's input space, shaped like one item."""
    return tuple(torch.as_tensor((v - mean) / std, dtype=z.dtype, device=z.device).expand_as(z[:1])
                 for v in (0.0, 1.0))


@register_method("rap")
class RAP(ChannelMethod):
    """Relative Attributing Propagation (Nam et al. 2020): positive and negative attributions separated by
    activators and inverted inhibitors at every layer, uniformly shifted, from the target output to the input."""

    citation = RAP_CITATION
    requires = ("propagation_rules",)
    #: the paper's map is the channel sum of the input relevance
    defaults = {"channel_reduction": "sum"}

    def attribute_channels(self, model: nn.Module, inputs: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        net, mean, std = normalisation(model)
        z = (inputs.detach() - mean) / std
        with torch.no_grad(), recording(net) as records:
            logits = net(z)
        head = output_layer(records, logits)
        selection = F.one_hot(target, logits.shape[1]).to(logits.dtype)
        walk = Propagation(net, records, rap_weighted, _bounds(z, mean, std),
                           overrides={head: lambda x, r: absolute_influence(head, x, r)})
        with torch.no_grad():
            return walk.run(head, selection)


@register_method("rsp")
class RSP(ChannelMethod):
    """Relative Sectional Propagation (Nam, Choi & Lee 2021): relative Grad-CAM of the target against the
    other top classes at the target layer, purged, then comparative-gradient propagation to the input.

    The target layer needs at least 2 x 2 locations: at 1 x 1 the relative map's target and hostile parts
    (equal mass) cancel at the one location, and rounding decides the sign of the whole map.
    """

    citation = RSP_CITATION
    requires = ("propagation_rules",)
    #: ``layer`` from the model spec (VGG16 features.29, ResNet50 layer4 in the paper). ``top_n``: classes
    #: compared, target included; the reference code leaves it a free argument, 5 is our choice (unverified)
    defaults = {"layer": None, "top_n": 5, "channel_reduction": "sum"}
    needs_layer = True

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        check_number(self, "top_n", 2, integer=True)

    def attribute_channels(self, model: nn.Module, inputs: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        layer = resolve_layer(self, model)
        net, mean, std = normalisation(model)
        z = (inputs.detach() - mean) / std
        with torch.enable_grad():
            with recording(net) as records:
                logits = net(z.requires_grad_())
            if layer not in records:
                raise ValueError(f"rsp: layer {self.params['layer']!r} is not called in the forward pass")
            activations = records[layer].output
            if activations.dim() != 4:
                raise ValueError(f"rsp needs a spatial [B,K,h,w] layer; {self.params['layer']!r} gives "
                                 f"{tuple(activations.shape)}")
            classes = _compared_classes(logits, target, self.params["top_n"])
            cams = unsummed_gradcams(logits, activations, classes)
        start = purge(relative_gradcam(cams))
        walk = Propagation(net, records, rsp_conv, _bounds(z, mean, std))
        with torch.no_grad():
            return walk.run(layer, start)
