"""The same method from other libraries, registered as ``<ours>@<library>`` for the implementation-agreement study.

Each variant is a thin wrapper over the library's own call with the library's documented defaults: they are
not aligned with ours, since how far the libraries disagree, and why, is what the report measures
(:mod:`salbench.report.agreement`). Each declares

* ``base``: the name of our method it re-implements;
* ``differences``: the documented ways it differs from ours, keyed by cause (``relu``, ``normalisation``,
  ``upsampling``, ``channel_reduction``, ``quadrature``, ...);
* ``alignment``: per cause, the parameter overrides that make the variant do what ours does in that one
  respect (a :class:`Same` value is read from our method's params), so a cause can be measured by re-running
  the variant with one step aligned (:func:`salbench.report.agreement.decompose_by_rerun`).

The wrappers only add what the method contract needs: a fresh input leaf that requires grad (so frozen
models work), every activation use in its own module where a library's rule hooks activation modules
(:func:`~salbench.methods.hooks.separate_activations`, as for our own propagation methods), and restoring what
a library changes on the model (pytorch_grad_cam switches it to eval mode and fills parameter ``.grad``).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any, ClassVar, Iterator

import torch
import torch.nn.functional as F
from torch import nn

from ..params import ParamError, check_choice
from .backprop import GuidedBackpropagation
from .base import ChannelMethod, Method, check_number, register_method
from .cam import GradCAM, resolve_layer
from .hooks import separate_activations
from .lrp import BACH_2015
from .path import IntegratedGradients

#: captum's ``LayerAttribution.interpolate`` modes (``F.interpolate`` modes for 2-D maps)
CAPTUM_INTERPOLATE_MODES = ("nearest", "bilinear", "bicubic", "area")


@dataclass(frozen=True)
class Same:
    """An alignment value taken from our method's params: ``Same("n_steps")`` is our ``n_steps``."""

    param: str


class Variant:
    """Declarations shared by the library variants (a mixin for :class:`~salbench.methods.base.Method`)."""

    #: our method this variant re-implements
    base: ClassVar[str] = ""
    #: documented differences from ours, by cause
    differences: ClassVar[dict[str, str]] = {}
    #: per cause, the parameter overrides that align that one step with ours
    alignment: ClassVar[dict[str, dict[str, Any]]] = {}


def aligned_params(variant: type[Variant], causes: tuple[str, ...], base_params: dict[str, Any],
                   params: dict[str, Any] | None = None) -> dict[str, Any]:
    """``params`` with the alignment overrides of ``causes`` applied (:class:`Same` values from ``base_params``)."""
    out = dict(params or {})
    for cause in causes:
        if cause not in variant.alignment:
            raise ValueError(f"{variant.__name__} has no alignment for {cause!r}; has {sorted(variant.alignment)}")
        for key, value in variant.alignment[cause].items():
            out[key] = base_params[value.param] if isinstance(value, Same) else value
    return out


def fresh_leaf(inputs: torch.Tensor) -> torch.Tensor:
    """A detached copy of ``inputs`` that requires grad (the caller's tensor is left untouched)."""
    return inputs.detach().clone().requires_grad_()


def one_hot(target: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
    """zennit's documented output attribution: the one-hot vector of the target class."""
    return F.one_hot(target, logits.shape[1]).to(logits.dtype)


@contextlib.contextmanager
def restored(model: nn.Module) -> Iterator[nn.Module]:
    """Restore every module's training flag and every parameter's ``.grad`` on exit."""
    modes = {m: m.training for m in model.modules()}
    grads = {p: p.grad for p in model.parameters()}
    try:
        yield model
    finally:
        for module, mode in modes.items():
            module.training = mode
        for p, grad in grads.items():
            p.grad = grad


# --------------------------------------------------------------------------------------------- Grad-CAM


@register_method("gradcam@captum")
class GradCAMCaptum(Variant, Method):
    """Grad-CAM by captum's ``LayerGradCam``, upsampled by ``LayerAttribution.interpolate`` (captum's defaults).

    captum's defaults differ from ours (:class:`~salbench.methods.cam.GradCAM`) in two steps: no ReLU
    (``relu_attributions=False``: the map is signed) and nearest-neighbour upsampling (ours: ReLU and bilinear).
    """

    citation = GradCAM.citation + " Implementation: captum 0.9 LayerGradCam (Kokhlikyan et al. 2020, arXiv:2009.07896)."
    defaults = {"layer": None, "relu_attributions": False, "interpolate_mode": "nearest"}
    needs_layer = True
    libraries = ("captum",)
    base = "gradcam"
    differences = {
        "relu": "captum's relu_attributions defaults to False: negative evidence is kept (ours: ReLU)",
        "upsampling": "captum's LayerAttribution.interpolate defaults to nearest (ours: bilinear)",
    }
    alignment = {"relu": {"relu_attributions": True}, "upsampling": {"interpolate_mode": "bilinear"}}

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        if not isinstance(self.params["relu_attributions"], bool):
            raise ParamError(f"method {self.name!r}: relu_attributions must be true or false")
        check_choice("method", self.name, "interpolate_mode", self.params["interpolate_mode"], CAPTUM_INTERPOLATE_MODES)

    def layer_maps(self, model: nn.Module, inputs: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """captum's layer map ``[B,1,h,w]`` before upsampling."""
        from captum.attr import LayerGradCam

        with torch.enable_grad():
            cams = LayerGradCam(model, resolve_layer(self, model)).attribute(
                fresh_leaf(inputs), target=target, relu_attributions=self.params["relu_attributions"]
            )
        return cams.detach()

    def attribute(self, model: nn.Module, inputs: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        from captum.attr import LayerAttribution

        cams = self.layer_maps(model, inputs, target)
        maps = LayerAttribution.interpolate(cams, tuple(inputs.shape[-2:]), self.params["interpolate_mode"])
        return maps.squeeze(1).to(torch.float32)


@register_method("gradcam@pytorch_grad_cam")
class GradCAMPytorchGradCam(Variant, Method):
    """Grad-CAM by pytorch_grad_cam's ``GradCAM`` (jacobgil), as its README calls it.

    Differs from ours in normalisation: each map is min-max scaled to [0, 1] after the ReLU
    (``scale_cam_image``, with a 1e-7 guard), then resized bilinearly by OpenCV (half-pixel centres, as ours,
    but with rounded interpolation weights: up to ~2e-3 of the map's range apart from torch's, measured).
    The library switches the model to eval mode and fills parameters' ``.grad``; both are restored.
    """

    citation = (GradCAM.citation
                + " Implementation: pytorch_grad_cam 1.5 (Gildenblat et al., github.com/jacobgil/pytorch-grad-cam).")
    defaults = {"layer": None}
    needs_layer = True
    libraries = ("pytorch_grad_cam",)
    base = "gradcam"
    differences = {
        "normalisation": "every map min-max scaled to [0, 1] after the ReLU (scale_cam_image; ours: raw values)",
        "upsampling": "OpenCV's bilinear resize, whose rounded weights differ from torch's by up to ~2e-3 of the range",
    }
    alignment = {}

    def attribute(self, model: nn.Module, inputs: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        from pytorch_grad_cam import GradCAM as LibraryGradCAM
        from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

        with restored(model), torch.enable_grad():
            cam = LibraryGradCAM(model=model, target_layers=[resolve_layer(self, model)])
            try:
                maps = cam(input_tensor=fresh_leaf(inputs), targets=[ClassifierOutputTarget(int(t)) for t in target])
            finally:
                cam.activations_and_grads.release()
        return torch.from_numpy(maps).to(device=inputs.device, dtype=torch.float32)


# -------------------------------------------------------------------------------------- guided backprop


@register_method("guided_backprop@captum")
class GuidedBackpropCaptum(Variant, ChannelMethod):
    """Guided backprop by captum's ``GuidedBackprop``, channels summed as captum's ``visualize_image_attr`` does.

    The rule is ours (captum's is the one ours reproduces); the map differs in the channel reduction: a
    signed sum over colour channels (captum's visualisation sums channels before taking the sign it shows),
    ours the maximum of absolute values (Simonyan et al.).
    """

    citation = GuidedBackpropagation.citation + " Implementation: captum 0.9 GuidedBackprop."
    defaults = {"channel_reduction": "sum"}
    libraries = ("captum",)
    requires = GuidedBackpropagation.requires
    base = "guided_backprop"
    differences = {"channel_reduction": "signed sum over colour channels (ours: max |.| over channels)"}
    alignment = {"channel_reduction": {"channel_reduction": Same("channel_reduction")}}

    def attribute_channels(self, model: nn.Module, inputs: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        from captum.attr import GuidedBackprop

        with separate_activations(model, inputs), torch.enable_grad():
            return GuidedBackprop(model).attribute(fresh_leaf(inputs), target=target).detach()


@register_method("guided_backprop@zennit")
class GuidedBackpropZennit(Variant, ChannelMethod):
    """Guided backprop by zennit's ``GuidedBackprop`` composite and ``Gradient`` attributor, channels summed.

    zennit's documented use: the one-hot target as the output gradient, the attribution summed over channels
    for the heat map. Same rule as ours; the map differs in the channel reduction (ours: max |.|).
    """

    citation = GuidedBackpropagation.citation + " Implementation: zennit 0.5 (Anders et al. 2021, arXiv:2106.13200)."
    defaults = {"channel_reduction": "sum"}
    libraries = ("zennit",)
    requires = GuidedBackpropagation.requires
    base = "guided_backprop"
    differences = {"channel_reduction": "signed sum over colour channels (zennit's heat maps; ours: max |.|)"}
    alignment = {"channel_reduction": {"channel_reduction": Same("channel_reduction")}}

    def attribute_channels(self, model: nn.Module, inputs: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        from zennit.attribution import Gradient
        from zennit.composites import GuidedBackprop

        with separate_activations(model, inputs), Gradient(model, GuidedBackprop()) as attributor:
            _, attribution = attributor(inputs.detach(), lambda logits: one_hot(target, logits))
        return attribution.detach()


# --------------------------------------------------------------------------------- integrated gradients


@register_method("integrated_gradients@captum")
class IntegratedGradientsCaptum(Variant, ChannelMethod):
    """Integrated gradients by captum's ``IntegratedGradients`` with its defaults: zero baseline, Gauss-Legendre.

    captum's default is 50 Gauss-Legendre steps; ours (our quadrature over plain input gradients) uses the paper's
    right Riemann sum; the baseline (black, pixel 0) and channel sum are the same. ``internal_batch_size``
    (rows of items x steps per pass) only bounds memory.
    """

    citation = IntegratedGradients.citation + " Implementation: captum 0.9 IntegratedGradients."
    defaults = {"n_steps": 50, "method": "gausslegendre", "internal_batch_size": 64, "channel_reduction": "sum"}
    libraries = ("captum",)
    base = "integrated_gradients"
    differences = {"quadrature": "Gauss-Legendre nodes and weights (captum's default; ours: right Riemann sum)"}
    #: aligning the quadrature takes our rule and our step count
    alignment = {"quadrature": {"method": Same("method"), "n_steps": Same("n_steps")}}

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        check_choice("method", self.name, "method", self.params["method"],
                     ("riemann_left", "riemann_right", "riemann_middle", "riemann_trapezoid", "gausslegendre"))
        check_number(self, "n_steps", 1, integer=True)
        check_number(self, "internal_batch_size", 1, integer=True)

    def attribute_channels(self, model: nn.Module, inputs: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        from captum.attr import IntegratedGradients as LibraryIntegratedGradients

        p = self.params
        with torch.enable_grad():
            attribution = LibraryIntegratedGradients(model).attribute(
                fresh_leaf(inputs), target=target, n_steps=p["n_steps"], method=p["method"],
                internal_batch_size=p["internal_batch_size"],
            )
        return attribution.detach()


@register_method("integrated_gradients@zennit")
class IntegratedGradientsZennit(Variant, ChannelMethod):
    """Integrated gradients by zennit's ``IntegratedGradients`` attributor with its defaults: zero baseline, 20 steps.

    zennit integrates by a right Riemann sum as ours does; the difference is the number of steps (20, ours 50
    or the configured ``n_steps``).
    """

    citation = IntegratedGradients.citation + " Implementation: zennit 0.5 IntegratedGradients."
    defaults = {"n_iter": 20, "channel_reduction": "sum"}
    libraries = ("zennit",)
    base = "integrated_gradients"
    differences = {"steps": "20 right-Riemann steps (zennit's default; ours: the configured n_steps)"}
    alignment = {"steps": {"n_iter": Same("n_steps")}}

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        check_number(self, "n_iter", 1, integer=True)

    def attribute_channels(self, model: nn.Module, inputs: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        from zennit.attribution import IntegratedGradients as LibraryIntegratedGradients

        attributor = LibraryIntegratedGradients(model, n_iter=self.params["n_iter"])
        with torch.enable_grad():
            _, attribution = attributor(inputs.detach(), lambda logits: one_hot(target, logits))
        return attribution.detach()


# ------------------------------------------------------------------------------------------ LRP-epsilon

#: parameter-free modules that only reshape, to which captum assigns no LRP rule (relevance passes unchanged)
RESHAPING = (nn.Flatten, nn.Unflatten, nn.Identity)


@register_method("lrp_epsilon@captum")
class LRPEpsilonCaptum(Variant, ChannelMethod):
    """LRP-epsilon by captum's ``LRP`` with its default rules (``EpsilonRule``, epsilon 1e-9, on every layer).

    Relevance starts at the target logit and is read at the pixel input (captum does not see the model's
    normalisation, which is not a module). captum has no rule for reshaping modules (``Flatten``); for the call
    they get captum's default ``EpsilonRule``, which on a reshape passes relevance unchanged. Differs from ours
    (zennit, :class:`~salbench.methods.lrp.LRPEpsilon`) in epsilon, batch norm (epsilon rule; ours merged into
    the convolution), residual additions (no rule; ours proportional) and where relevance is read. On a
    bias-free ReLU net with epsilon aligned the two agree (tested).
    """

    citation = BACH_2015 + " Implementation: captum 0.9 LRP."
    defaults = {"channel_reduction": "sum"}
    requires = ("propagation_rules",)
    libraries = ("captum",)
    base = "lrp_epsilon"
    differences = {
        "rule": "epsilon 1e-9 on every layer, pooling and batch norm included (ours: epsilon 0.01, zennit's pooling "
                "rules, batch norm merged); residual additions get no rule (the gradient splits relevance)",
        "input": "relevance read at the pixel input through the normalisation (ours: at the normalised input)",
    }
    alignment = {}

    def attribute_channels(self, model: nn.Module, inputs: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        from captum.attr import LRP
        from captum.attr._core.lrp import SUPPORTED_LAYERS_WITH_RULES
        from captum.attr._utils.lrp_rules import EpsilonRule

        def default_rule(module: nn.Module) -> type | None:
            """captum's rule class for a module it has no rule for: EpsilonRule for reshapes, and a subclass of a
            supported layer (the input-invariance check's shifted-padding Conv2d) gets its base class's rule."""
            if isinstance(module, RESHAPING):
                return EpsilonRule
            return next((rule for base, rule in SUPPORTED_LAYERS_WITH_RULES.items()
                         if type(module) is not base and isinstance(module, base)), None)

        with separate_activations(model, inputs), torch.enable_grad():
            added = {m: rule for m in model.modules() if not hasattr(m, "rule") and (rule := default_rule(m))}
            try:
                for module, rule in added.items():
                    module.rule = rule()
                attribution = LRP(model).attribute(fresh_leaf(inputs), target=target)
            finally:  # captum deletes every ``rule`` when it finishes; this covers a failure before that
                for module in added:
                    if hasattr(module, "rule"):
                        del module.rule
        return attribution.detach()


@register_method("lrp_epsilon@zennit")
class LRPEpsilonZennit(Variant, ChannelMethod):
    """LRP-epsilon by zennit as its documentation shows it: epsilon rule (1e-6) on convolutions and linear layers,
    zennit's base rules elsewhere, the ``Gradient`` attributor with the one-hot target as output relevance.

    Ours runs the same zennit rule with epsilon 0.01, starts relevance at the target logit, canonizes batch
    norm and residual sums, and reads relevance at the normalised input; this variant reads it at the pixel
    input (the normalisation divides it by the channel's std) and starts from 1.
    """

    citation = BACH_2015 + " Implementation: zennit 0.5 (Anders et al. 2021, arXiv:2106.13200)."
    defaults = {"epsilon": 1e-6, "channel_reduction": "sum"}
    requires = ("propagation_rules",)
    libraries = ("zennit",)
    base = "lrp_epsilon"
    differences = {
        "rule": "epsilon 1e-6 (zennit's default; ours: 0.01), no canonizers",
        "start": "relevance starts at 1 (one-hot; ours: the target logit): a per-item scale",
        "input": "relevance read at the pixel input through the normalisation (ours: at the normalised input)",
    }
    alignment = {"rule": {"epsilon": Same("epsilon")}}

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        check_number(self, "epsilon", 0.0)

    def attribute_channels(self, model: nn.Module, inputs: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        from zennit.attribution import Gradient
        from zennit.composites import LayerMapComposite, layer_map_base
        from zennit.rules import Epsilon
        from zennit.types import Convolution

        rule = Epsilon(epsilon=self.params["epsilon"])
        composite = LayerMapComposite(layer_map=layer_map_base() + [(Convolution, rule), (nn.Linear, rule)])
        with separate_activations(model, inputs), Gradient(model, composite) as attributor:
            _, attribution = attributor(inputs.detach(), lambda logits: one_hot(target, logits))
        return attribution.detach()


def variants_of(base: str) -> list[str]:
    """Registered variants of our method ``base`` (names ``base@library``)."""
    from .base import METHODS

    return [name for name in METHODS.names(f"{base}@*") if issubclass(METHODS.get(name), Variant)]

