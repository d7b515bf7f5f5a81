"""Relative Sectional Propagation (RSP, Nam, Choi & Lee, AAAI 2021) and its predecessor Relative Attributing
Propagation (RAP, Nam et al., AAAI 2020): bi-polar relevance, positive for the target, negative for the rest.

Both run inside the normalisation wrapper on the network's own input (as LRP does, :mod:`.lrp`), with the
propagation engine of :mod:`.relprop`; the pixel map is the input relevance summed over channels.

* **RAP** starts from the one-hot target output and propagates through the whole network, linear layers
  included: absolute influence normalisation at the output layer, activators and (inverted) inhibitors with a
  uniform shift at every hidden conv/linear layer (negative relevance to the inhibitors only at convolutions),
  z^B at the input. The input relevances sum to the target logit.
* **RSP** starts at the target layer (the model spec's Grad-CAM layer) and propagates only the feature
  extractor below it. The start is the *relative* Grad-CAM of the target against the ``top_n - 1`` other
  highest-scoring classes (the hostile factor, :func:`relative_gradcam`), purged of channel conflicts
  (:func:`purge`); the convolutions propagate target and hostile relevance separately with comparative
  gradients, doubled and uniformly shifted (:func:`~.relprop.rsp_conv`).

Both input rules bound the first layer's input by its own minimum and maximum per image
(:func:`~.relprop.input_bounds`), as the authors' ``final_backward``. Each class names the reference code it
follows; the deliberate differences are listed there and in ``docs/fidelity.md``.
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

#: RAP's pooling adds nothing to the pooled inputs (``RelPropSimple.RAP_relprop``; RSP's adds 1e-9)
RAP_POOL_EPS = 0.0

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


@register_method("rap")
class RAP(ChannelMethod):
    """Relative Attributing Propagation (Nam et al. 2020): positive and negative attributions separated by
    activators and inverted inhibitors at every layer, uniformly shifted, from the target output to the input.

    Follows github.com/wjNam/Relative_Attributing_Propagation: ``main.py`` (one-hot ``T`` of the target,
    ``model.RAP_relprop(R=T)``, channel sum) and ``modules/layers.py`` (``Linear.RAP_relprop`` at the output and
    hidden linear layers, ``Conv2d.RAP_relprop`` at convolutions, its ``final_backward`` at the input,
    ``BatchNorm2d``/``RelPropSimple`` for the rest). Deliberate differences: residual additions split by the
    rectified summands (:func:`~.relprop.sum_rule`), not the raw ones; the z^B rule also serves a network whose
    first weighted layer is linear (the authors' code has it for 3-channel convolutions only); any batch size
    (the authors run one image at a time; every quantity here is per item).
    """

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
        walk = Propagation(net, records, rap_weighted, pool_eps=RAP_POOL_EPS,
                           overrides={head: lambda x, r: absolute_influence(head, x, r)})
        with torch.no_grad():
            return walk.run(head, selection)


@register_method("rsp")
class RSP(ChannelMethod):
    """Relative Sectional Propagation (Nam, Choi & Lee 2021): relative Grad-CAM of the target against the
    other top classes at the target layer, purged, then comparative-gradient propagation to the input.

    The target layer needs at least 2 x 2 locations: at 1 x 1 the relative map's target and hostile parts
    (equal mass) cancel at the one location, and rounding decides the sign of the whole map.

    Follows github.com/wjNam/Relative_Sectional_Propagation: ``main.py`` (``relative_GAM``: per-class unsummed
    Grad-CAMs from ``baselines/gradcam.py``'s ``generate_cam_without_sum``, each over its maximum, the relative
    map and its purging; ``model.RSP``: the feature extractor below the Grad-CAM layer) and ``modules/layers.py``
    (``Conv2d``/``BatchNorm2d``/``RelPropSimple`` ``.RSP_relprop``, ``final_backward`` at the input).
    Deliberate differences: the released ``main.py`` loop starts from the target's plain max-normalised
    Grad-CAM and never calls ``relative_GAM`` (which reads undefined globals); we start, as the paper, from the
    relative, purged map. ``top_n`` is ours: ``relative_GAM(num_pred, ...)`` takes the number of compared
    classes as an argument and no released code sets it. The compared classes are the target and the
    ``top_n - 1`` highest-scoring others (the authors' list is the top predictions, which holds the target when
    it is the prediction). A class map with no positive entry is left unscaled (the authors' division by
    ``max + 1e-9`` flips or blows it up). The authors' ResNet has no ``Bottleneck.RSP_relprop``; a residual
    block here composes their ``Add`` (rectified split), ``BatchNorm2d`` and ``Conv2d`` rules in its order.
    Any batch size, per-item quantities (the authors run one image at a time).
    """

    citation = RSP_CITATION
    requires = ("propagation_rules",)
    #: ``layer`` from the model spec (VGG16 features.29, ResNet50 layer4 in the paper). ``top_n``: classes
    #: compared, target included; ours (the authors' ``relative_GAM`` takes it as an argument, never set)
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
        walk = Propagation(net, records, rsp_conv)
        with torch.no_grad():
            return walk.run(layer, start)
