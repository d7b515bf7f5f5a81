"""Input invariance under a constant input shift (Kindermans et al.).

Kindermans, Hooker, Adebayo, Alber, Schuett, Daehne, Erhan & Kim, "The (Un)reliability of Saliency
Methods", in *Explainable AI*, LNCS 11700, Springer 2019 (arXiv:1711.00867): shift every input by a
constant, ``x2 = x1 + c``, and compensate in the first layer's bias, ``b2 = b1 - W c``, so the second
network computes exactly the first one's function on the shifted data. A method whose map changes
between the two (gradient x input, integrated gradients with a zero baseline, LRP, DTD with a zero
root point) attributes to something the model does not depend on; plain gradients are invariant.

Our models normalise internally (:class:`~salbench.models.base.NormalizedClassifier`), so the shift
``c`` is in pixel space and reaches the first layer as ``c / std`` per channel; the compensation is
computed for that. A zero-padded first convolution would see the shift everywhere except in its
padding, where a bias cannot compensate it; the shifted model therefore pads that layer with the
shifted value of zero (``c / std``) instead (:class:`ShiftPaddedConv2d`), which makes the two models
agree on every output, borders included. Other padding modes (reflect, replicate, circular) carry the
shift into the padding by themselves and only get the bias compensation.

A vision transformer is compensated in its patch-embedding convolution (``transformer-methods.md`` §8): its
stride equals its kernel and it has no padding, so ``b - W d`` makes every patch embedding, and so every
token, activation and logit, exactly the original's.

A network whose first layer is no convolution (a CoDA-Net's dynamic alignment unit has no bias to
compensate with) is compensated in its wrapper instead: the normalisation mean moves by ``c``, so the
network sees exactly its original input. Methods that work in pixel space still see ``x + c``.
"""

from __future__ import annotations

import copy
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..methods.base import Method, normalisation
from ..methods.controls import seeds_from
from ..models.base import NormalizedClassifier
from ..models.layers import randomisation_order
from ..saliency import compute_maps


class InvarianceError(AssertionError):
    """The mean-shifted model is not functionally identical to the original (logits differ)."""


class ShiftPaddedConv2d(nn.Conv2d):
    """A :class:`~torch.nn.Conv2d` whose zero padding is replaced by a constant per input channel (``pad_value``).

    Still a ``Conv2d`` (same parameters, same names), so canonizers and LRP rules treat it as one.
    """

    pad_value: torch.Tensor

    def _conv_forward(self, input: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        pads = self._reversed_padding_repeated_twice
        border = F.pad(torch.zeros_like(input[:1, :1]), pads, value=1.0)
        padded = F.pad(input, pads) + border * self.pad_value.view(1, -1, 1, 1)
        return F.conv2d(padded, weight, bias, self.stride, 0, self.dilation, self.groups)

    @classmethod
    def from_conv(cls, conv: nn.Conv2d, pad_value: torch.Tensor) -> "ShiftPaddedConv2d":
        """A copy of zero-padded ``conv`` (weights, bias, train/eval mode) padding with ``pad_value [C_in]``."""
        shifted = cls(conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride, conv.padding, conv.dilation,
                      conv.groups, conv.bias is not None, "zeros", conv.weight.device, conv.weight.dtype)
        shifted.load_state_dict(conv.state_dict())
        shifted.register_buffer("pad_value", pad_value.to(conv.weight))
        return shifted.train(conv.training)


def _channel_shift(shift: float | Sequence[float] | torch.Tensor, channels: int) -> torch.Tensor:
    """The pixel-space shift as a ``[1,C,1,1]`` float tensor (a scalar applies to every channel)."""
    values = torch.as_tensor(shift, dtype=torch.float32).flatten()
    if values.numel() not in (1, channels):
        raise ValueError(f"shift needs 1 or {channels} values, got {values.numel()}")
    return values.expand(channels).reshape(1, channels, 1, 1).clone()


def first_layer(model: nn.Module) -> str:
    """Name of the layer that first sees the input: the model spec's ``input_layer`` where it names one (a ViT's
    patch-embedding convolution: the module owning its class token and position embeddings comes first in the
    randomisation order), else the model's first parameterised layer (the last of the top-down order)."""
    named = getattr(getattr(model, "spec", None), "extra", {}).get("input_layer")
    return named or randomisation_order(model)[-1]


def mean_shifted_model(model: nn.Module, shift: float | Sequence[float] | torch.Tensor) -> nn.Module:
    """A deep copy of ``model`` with ``copy(x + shift) == model(x)`` for pixel-space inputs ``x``.

    A first parameterised layer that is a :class:`~torch.nn.Conv2d` applied directly to the network's
    (normalised) input gets the bias ``b - W d`` with ``d = shift / std`` (a bias is added if it had
    none), computed by convolving a constant ``d`` image so groups and dilation are honoured; zero
    padding becomes padding with ``d`` (see the module docstring). Any other first layer of a
    :class:`~salbench.models.base.NormalizedClassifier` is compensated by its normalisation mean.
    ``model`` itself is untouched.
    """
    shifted = copy.deepcopy(model)
    name = first_layer(shifted)
    conv = shifted.get_submodule(name)
    if not isinstance(conv, nn.Conv2d):
        if isinstance(shifted, NormalizedClassifier):
            shifted.mean += _channel_shift(shift, shifted.mean.shape[1]).to(shifted.mean)
            return shifted
        raise TypeError(f"first layer {name!r} is a {type(conv).__name__}; the input-shift compensation needs a "
                        "Conv2d (or a NormalizedClassifier wrapper)")
    _, _, std = normalisation(shifted)
    pixel_shift = _channel_shift(shift, conv.in_channels).to(conv.weight)
    d = (pixel_shift / std).to(conv.weight)  # [1,C,1,1]: the shift as the first layer sees it
    extent = [(k - 1) * dil + 1 for k, dil in zip(conv.kernel_size, conv.dilation)]
    with torch.no_grad():
        w_d = F.conv2d(d.expand(1, -1, *extent), conv.weight, None, 1, 0, conv.dilation, conv.groups).flatten()
        if conv.bias is None:
            conv.bias = nn.Parameter(torch.zeros_like(w_d))
        conv.bias -= w_d
        if isinstance(conv, ShiftPaddedConv2d):  # shifting an already shifted model
            conv.pad_value += d.flatten()
    zero_padded = conv.padding_mode == "zeros" and any(conv._reversed_padding_repeated_twice)
    if zero_padded and not isinstance(conv, ShiftPaddedConv2d):
        parent, _, child = name.rpartition(".")
        setattr(shifted.get_submodule(parent), child, ShiftPaddedConv2d.from_conv(conv, d.flatten()))
    return shifted


@torch.no_grad()
def batched_logits(model: nn.Module, images: torch.Tensor, batch_size: int) -> torch.Tensor:
    """Logits ``[N,K]`` of ``model`` for float ``images [N,C,H,W]``, ``batch_size`` at a time."""
    return torch.cat([model(images[start:start + batch_size]) for start in range(0, images.shape[0], batch_size)])


def assert_same_logits(model: nn.Module, shifted: nn.Module, images: torch.Tensor, shift: torch.Tensor,
                       atol: float, batch_size: int) -> float:
    """Largest logit gap between ``shifted(x + shift)`` and ``model(x)``; :class:`InvarianceError` above ``atol``."""
    gap = (batched_logits(model, images, batch_size) - batched_logits(shifted, images + shift, batch_size)).abs().max()
    if not gap <= atol:
        raise InvarianceError(f"mean-shifted model's logits differ from the original's by {gap.item():.3g} > {atol}")
    return gap.item()


def map_differences(original: torch.Tensor, shifted: torch.Tensor) -> dict[str, torch.Tensor]:
    """Per-item difference of two ``[N,H,W]`` map stacks, float64 ``[N]``.

    ``relative_l1 = sum|a - b| / sum|a|`` and ``relative_max = max|a - b| / max|a|`` (0 when both maps are
    zero, inf when only the original is).
    """
    a, b = original.flatten(1).to(torch.float64), shifted.flatten(1).to(torch.float64)
    diff = (a - b).abs()

    def ratio(num: torch.Tensor, den: torch.Tensor) -> torch.Tensor:
        return torch.where(num == 0, torch.zeros_like(num), num / den)

    return {"relative_l1": ratio(diff.sum(1), a.abs().sum(1)), "relative_max": ratio(diff.amax(1), a.abs().amax(1))}


def input_invariance(
    method: Method,
    model: nn.Module,
    images: torch.Tensor,
    targets: torch.Tensor,
    shift: float | Sequence[float] | torch.Tensor = -1.0,
    atol: float = 1e-4,
    batch_size: int = 32,
    device: str | torch.device | None = None,
    maps: torch.Tensor | None = None,
) -> dict[str, torch.Tensor]:
    """Kindermans et al.'s input-invariance test of ``method`` on float pixel ``images [N,C,H,W]``.

    Builds the mean-shifted model (default ``c = -1``: [0, 1] -> [-1, 0], as in the paper), asserts its
    logits on ``x + c`` match the original's on ``x`` (:class:`InvarianceError` otherwise), computes the
    maps of both and returns :func:`map_differences` (CPU). ``maps`` are the original model's maps when
    already computed.
    """
    device = torch.device(device) if device is not None else images.device
    shifted_model = mean_shifted_model(model, shift)
    c = _channel_shift(shift, images.shape[1])
    x = images.to(device, torch.float32)
    assert_same_logits(model, shifted_model, x, c.to(device), atol, batch_size)
    if maps is None:
        maps = compute_maps(method, model, images, targets, batch_size, progress=False, device=device)
    shifted = images.to(torch.float32) + c.to(images.device)
    with seeds_from(shifted, images):  # sampling methods draw the original items' noise
        moved = compute_maps(method, shifted_model, shifted, targets, batch_size, progress=False, device=device)
    return map_differences(maps, moved)
