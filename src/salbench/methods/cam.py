"""Class activation maps from a target layer: Grad-CAM (Selvaraju et al., ICCV 2017)."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ..params import ParamError, check_choice
from .base import Method, register_method
from .postprocess import UPSAMPLE_MODES, upsample


def resolve_layer(method: Method, model: nn.Module) -> nn.Module:
    """The submodule named by ``method.params["layer"]`` (a dotted name relative to ``model``)."""
    name = method.params["layer"]
    if not name:
        raise ParamError(f"method {method.name!r} needs a layer name (the model spec's target_layer)")
    try:
        return model.get_submodule(name)
    except AttributeError as err:
        raise ParamError(f"method {method.name!r}: model has no layer {name!r} ({err})") from None


@register_method("gradcam")
class GradCAM(Method):
    """ReLU of the layer activations weighted by their spatially averaged gradients (Selvaraju et al. 2017)."""

    citation = (
        "Selvaraju, Cogswell, Das, Vedantam, Parikh & Batra. Grad-CAM: Visual Explanations from Deep "
        "Networks via Gradient-based Localization. ICCV 2017. arXiv:1610.02391"
    )
    #: ``layer`` comes from the model spec's target layer; the layer map is upsampled bilinearly
    defaults = {"layer": None, "upsample": "bilinear"}
    needs_layer = True
    libraries = ("captum",)

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        check_choice("method", self.name, "upsample", self.params["upsample"], UPSAMPLE_MODES)

    def attribute(self, model: nn.Module, inputs: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        from captum.attr import LayerGradCam

        layer = resolve_layer(self, model)
        with torch.enable_grad():
            # a fresh leaf that requires grad keeps the graph alive even for a frozen model
            x = inputs.detach().requires_grad_()
            cams = LayerGradCam(model, layer).attribute(x, target=target, relu_attributions=True).detach()
        if cams.dim() != 4:
            shape = tuple(cams.shape)
            raise ValueError(f"gradcam needs a spatial [B,K,h,w] output; layer {self.params['layer']!r} gives {shape}")
        maps = upsample(cams.squeeze(1), tuple(inputs.shape[-2:]), self.params["upsample"])
        return maps.to(torch.float32)
