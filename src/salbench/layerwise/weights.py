"""Generalised Grad-CAM channel weights of several layers in one pass (Bianchi, De Santis, Tocchetti & Brambilla,
"Interpretable Network Visualizations", IJCAI 2024, arXiv:2405.03301).

Follows ``Antonio-Dee/interpretable-network-visualizations``, ``Code/Feature Map Analysis/main.ipynb`` (the
"Feature maps from Grad-CAM" cell and ``computeDiscardValue``). For the target logit ``y_c`` (no softmax) and a
layer's activations ``A``, the guided gradients are ``G = 1[A > 0] * 1[dy_c/dA > 0] * dy_c/dA``; channel ``k``
weighs ``w_k = mean_ij G_k`` and its share of the layer is ``w~_k = 100 w_k / sum_k w_k`` (percent). Channels
with ``w~_k <=`` :func:`prune_threshold` are dropped.
"""

from __future__ import annotations

import contextlib
from typing import Sequence

import torch
from torch import nn

from ..methods.cam import capture

#: the authors' pruning constants: percent thresholds 89.6 / 2^j for 64..512 channels, 76.8 / N below 64
PRUNE_PERCENT = 89.6
PRUNE_PERCENT_NARROW = 76.8
PRUNE_RULE = ("drop channels with w~_k <= t(N), N channels: t = 0.175 % (N >= 512), 0.35 % (>= 256), 0.7 % (>= 128), "
              "1.4 % (>= 64), else 76.8 / N % (the authors' computeDiscardValue)")


def layer_activations_and_grads(
    model: nn.Module, layers: Sequence[str], inputs: torch.Tensor, target: torch.Tensor
) -> tuple[list[torch.Tensor], list[torch.Tensor], torch.Tensor]:
    """Detached activations ``[B,K,h,w]`` and target-logit gradients of every named layer, and the logits.

    One forward and one backward pass for the whole batch and all layers; the hooks are removed on exit.
    """
    modules = []
    for name in layers:
        try:
            modules.append(model.get_submodule(name))
        except AttributeError as err:
            raise ValueError(f"model has no layer {name!r} ({err})") from None
    leaf = not all(p.requires_grad for p in model.parameters())  # frozen models need a leaf to keep the graph
    with torch.enable_grad(), contextlib.ExitStack() as stack:
        captured = [stack.enter_context(capture(module)) for module in modules]
        logits = model(inputs.detach().requires_grad_(leaf))
        for name, outputs in zip(layers, captured):
            if len(outputs) != 1:
                raise ValueError(f"layer {name!r} ran {len(outputs)} times in one forward pass; INV needs exactly one")
        activations = [outputs[0] for outputs in captured]
        score = logits.gather(1, target.view(-1, 1)).sum()
        grads = torch.autograd.grad(score, activations)
    return [a.detach() for a in activations], [g.detach() for g in grads], logits.detach()


def guided_channel_weights(activations: torch.Tensor, grads: torch.Tensor) -> torch.Tensor:
    """``w_k`` ``[B,K]``: spatial mean of the guided gradients ``1[A>0] 1[dA>0] dA`` (non-negative)."""
    guided = grads * ((activations > 0) & (grads > 0))
    return guided.mean(dim=(2, 3))


def percent_weights(weights: torch.Tensor) -> torch.Tensor:
    """``w~_k = 100 w_k / sum_k w_k`` per row of ``[B,K]``; a row with no positive weight stays all zeros."""
    total = weights.sum(dim=1, keepdim=True)
    return torch.where(total > 0, 100 * weights / total.clamp_min(torch.finfo(weights.dtype).tiny), 0.0)


def prune_threshold(n_channels: int) -> float:
    """The percent weight a channel must exceed in a layer of ``n_channels`` channels (:data:`PRUNE_RULE`).

    The authors' table: ``89.6 / 2^j`` for the largest power of two ``2^j`` in 64..512 not above ``n_channels``
    (0.175 % at 512 and wider, 1.4 % at 64..127), and ``76.8 / n_channels`` below 64.
    """
    if n_channels < 64:
        return PRUNE_PERCENT_NARROW / n_channels
    return PRUNE_PERCENT / min(512, 2 ** (n_channels.bit_length() - 1))


def kept_channels(percent: torch.Tensor) -> torch.Tensor:
    """Boolean ``[B,K]``: channels whose percent weight exceeds :func:`prune_threshold` of ``K``."""
    return percent > prune_threshold(percent.shape[-1])
