"""Class activation maps from a target layer: Grad-CAM (Selvaraju et al., ICCV 2017), and the layer hooks the
CAM family shares (:func:`capture`, :func:`activations_and_grads`).

On a vision transformer the layer's ``[B,N,D]`` tokens are read on the patch grid: prefix tokens dropped, patch
tokens reshaped row-major to ``[B,D,gh,gw]`` (pytorch-grad-cam's ``reshape_transform``; grid and prefix from the
model, references/transformer-methods.md §5), so every CAM formula applies unchanged."""

from __future__ import annotations

import contextlib
from typing import Any, Iterator

import torch
from torch import nn

from ..params import ParamError, check_choice
from .base import Method, register_method
from .postprocess import UPSAMPLE_MODES, upsample
from .transformer_attention import TokenLayout, token_layout

#: what the CAM family needs of a model: a target layer whose output is a ``[B,K,h,w]`` feature map, or a vision
#: transformer's tokens on its patch grid (a model without a target layer lacks it)
LAYER_MAPS = "layer_maps"


def resolve_layer(method: Method, model: nn.Module) -> nn.Module:
    """The submodule named by ``method.params["layer"]`` (a dotted name relative to ``model``)."""
    name = method.params["layer"]
    if not name:
        raise ParamError(f"method {method.name!r} needs a layer name (the model spec's target_layer)")
    try:
        return model.get_submodule(name)
    except AttributeError as err:
        raise ParamError(f"method {method.name!r}: model has no layer {name!r} ({err})") from None


class LayerMapMethod(Method):
    """A CAM-family method: reads its ``layer``'s feature map, or a vision transformer's tokens on the patch grid."""

    needs_layer = True

    @classmethod
    def capabilities(cls) -> tuple[str, ...]:
        return (*cls.requires, LAYER_MAPS)


@contextlib.contextmanager
def capture(layer: nn.Module, edit: Any = None, tokens: TokenLayout | None = None) -> Iterator[list[torch.Tensor]]:
    """Record ``layer``'s outputs (one per forward) in the yielded list; ``edit(output)`` may replace them.

    With ``tokens`` (a vision transformer's layout), a ``[B,N,D]`` output is recorded as its ``[B,D,gh,gw]`` patch
    grid, and the model reads its tokens back from that grid (equal values), so gradients w.r.t. the recorded
    grid, and edits of it, reach the model. The hook is removed on exit, also when the body raises.
    """
    outputs: list[torch.Tensor] = []

    def hook(_module: nn.Module, _inputs: Any, output: torch.Tensor) -> torch.Tensor | None:
        on_grid = tokens is not None and isinstance(output, torch.Tensor) and output.dim() == 3
        grid = tokens.to_grid(output) if on_grid else output
        if not isinstance(grid, torch.Tensor) or grid.dim() != 4:
            shape = getattr(output, "shape", type(output).__name__)
            raise ValueError(f"CAM methods need a spatial [B,K,h,w] layer output (or ViT tokens), got {shape}")
        if edit is not None:
            grid = edit(grid)
        outputs.append(grid)
        if on_grid:
            return tokens.from_grid(grid, output)
        return grid if edit is not None else None

    handle = layer.register_forward_hook(hook)
    try:
        yield outputs
    finally:
        handle.remove()


def activations_and_grads(
    model: nn.Module, layer: nn.Module, inputs: torch.Tensor, target: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Detached ``(A, dlogit_target/dA, logits)`` of ``layer`` for ``inputs``."""
    # a (partly) frozen model needs a fresh input leaf that requires grad to keep the graph alive; when every
    # parameter requires grad they do, and the input needs no gradient bookkeeping
    leaf = not all(p.requires_grad for p in model.parameters())
    with torch.enable_grad(), capture(layer, tokens=token_layout(model)) as outputs:
        logits = model(inputs.detach().requires_grad_(leaf))
        score = logits.gather(1, target.view(-1, 1)).sum()
        (grads,) = torch.autograd.grad(score, outputs[0])
    return outputs[0].detach(), grads.detach(), logits.detach()


@register_method("gradcam")
class GradCAM(LayerMapMethod):
    """ReLU of the layer activations weighted by their spatially averaged gradients (Selvaraju et al. 2017).

    The formula of captum's ``LayerGradCam`` (equal maps, tested) with one forward hook, so a sanity cascade
    costs its bare forward and backward passes.
    """

    citation = (
        "Selvaraju, Cogswell, Das, Vedantam, Parikh & Batra. Grad-CAM: Visual Explanations from Deep "
        "Networks via Gradient-based Localization. ICCV 2017. arXiv:1610.02391"
    )
    #: ``layer`` comes from the model spec's target layer; the layer map is upsampled bilinearly (the CoDA
    #: authors' captum call, ``explainers/captum.py``, upsamples nearest: config/coda_cifar10.yaml sets it)
    defaults = {"layer": None, "upsample": "bilinear"}

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        check_choice("method", self.name, "upsample", self.params["upsample"], UPSAMPLE_MODES)

    def attribute(self, model: nn.Module, inputs: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        acts, grads, _ = activations_and_grads(model, resolve_layer(self, model), inputs, target)
        cams = (grads.mean(dim=(2, 3), keepdim=True) * acts).sum(dim=1).clamp(min=0)
        return upsample(cams, tuple(inputs.shape[-2:]), self.params["upsample"]).to(torch.float32)
