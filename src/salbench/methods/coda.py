"""CoDA-Net contribution maps: the model-inherent, exact linear decomposition of a logit.

Böhle, Fritz & Schiele, "Convolutional Dynamic Alignment Networks for Interpretable Classifications",
CVPR 2021 (arXiv:2104.00032); intermediate layers ("interpretable depth") as in the TPAMI version
(arXiv:2109.13004). A CoDA-Net computes ``logit_c = W_c(x) v + b`` with ``v = [x, 1 - x]`` its
6-channel input, ``W_c(x)`` the product of the layers' dynamic weights and ``b`` the fixed logit bias.
With the dynamic weights detached (:func:`~salbench.models.coda.explanation_mode`) the gradient of the
logit w.r.t. ``v`` is ``W_c(x)``, so ``v * grad`` summed over the channels is a map whose sum is exactly
``logit_c - b``. The same holds for the output ``a_l`` of any DAU layer: the layers above it are linear
in ``a_l``, so ``a_l * d logit_c / d a_l`` sums to ``logit_c - b`` too.

Reference code followed: ``Trainer.attribute`` in ``training/trainer_base.py`` of github.com/moboehle/CoDA-Nets
(explanation mode on every ``CoDAConv2d``, which detaches the weights and their norm, ``modules/coda_conv.py``;
then captum's ``InputXGradient`` of the target logit w.r.t. ``pre_process_img(image)``, the 6-channel
``AddInverse`` output); their localisation and pixel-removal scripts sum it over the 6 channels, as the method
does here. Line by line the same, with one addition of ours: ``layer`` (intermediate layers, from the TPAMI
version; the CVPR code explains the input only), whose maps are upsampled by ``upsample`` (bilinear: our choice,
the CVPR code has no counterpart).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ..models.coda import CITATION, dau_layers, explanation_mode
from ..params import ParamError, check_choice
from .base import Method, register_method
from .postprocess import UPSAMPLE_MODES, upsample


def contributions(model: nn.Module, inputs: torch.Tensor, target: torch.Tensor,
                  layer: str | None = None) -> torch.Tensor:
    """Per-channel contributions ``[B, C, h, w]`` to logit ``target`` of the CoDA-Net's 6-channel input
    (``layer=None``, the first DAU's input) or of the output of the submodule named ``layer``.

    Summed over channels and positions they give ``logit - b`` (b: the logit bias) for every item.
    """
    layers = dau_layers(model)
    if not layers:
        raise TypeError(f"{type(model).__name__} has no DAU layers: CoDA contributions need a CoDA-Net")
    captured: list[torch.Tensor] = []
    if layer is None:
        handle = layers[0].register_forward_pre_hook(lambda module, args: captured.append(args[0]))
    else:
        try:
            module = model.get_submodule(layer)
        except AttributeError as err:
            raise ParamError(f"method 'coda_contributions': model has no layer {layer!r} ({err})") from None
        handle = module.register_forward_hook(lambda module, args, output: captured.append(output))
    try:
        with explanation_mode(model), torch.enable_grad():
            logits = model(inputs.detach().requires_grad_())
            explained = captured[0]
            if explained.dim() != 4:
                raise ParamError(f"method 'coda_contributions': layer {layer!r} gives {tuple(explained.shape)}, "
                                 f"not a spatial [B,C,h,w] map")
            selected = logits.gather(1, target.view(-1, 1).to(logits.device)).sum()
            (gradient,) = torch.autograd.grad(selected, explained)
    finally:
        handle.remove()
    return (gradient * explained).detach()


@register_method("coda_contributions")
class CoDAContributions(Method):
    """Exact contributions of a CoDA-Net (detached dynamic weights, input x gradient), summed over channels.

    ``layer``: None for the 6-channel input ``[x, 1 - x]`` (pixel resolution, the paper's maps), or a DAU
    layer's name (e.g. ``net.layers.3``) for the contributions of its output ("interpretable depth"),
    upsampled to the input resolution by ``upsample``.
    """

    citation = CITATION
    defaults = {"layer": None, "upsample": "bilinear"}
    model_family = "coda"

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        check_choice("method", self.name, "upsample", self.params["upsample"], UPSAMPLE_MODES)
        if self.params["layer"] is not None and not isinstance(self.params["layer"], str):
            raise ParamError(f"method {self.name!r}: layer must be a layer name or null, got {self.params['layer']!r}")

    def attribute(self, model: nn.Module, inputs: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        maps = contributions(model, inputs, target, self.params["layer"]).sum(dim=1)
        return upsample(maps, tuple(inputs.shape[-2:]), self.params["upsample"]).to(torch.float32)
