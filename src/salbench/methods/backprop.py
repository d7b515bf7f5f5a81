"""Modified backpropagation: guided backprop, deconvnet, guided Grad-CAM and (contrastive) excitation backprop.

Guided backprop and deconvnet (captum's rules, without its module backward hooks: a tensor hook or a custom
ReLU per call) run with out-of-place activations (:func:`~salbench.methods.hooks.separate_activations`).
Excitation backprop uses zennit's ``ExcitationBackprop`` composite with TorchRay's choices: bias ignored, batch
norm passed through, residual additions split in proportion to their summands
(:mod:`~salbench.methods.canonizers`), the map read at an intermediate layer and summed over its channels.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Any, Callable, ContextManager, Iterator

import torch
import torch.nn.functional as F
from torch import nn

from ..params import ParamError, check_choice
from .base import ChannelMethod, Method, register_method
from .cam import GradCAM, resolve_layer
from .hooks import capture_output, registered, separate_activations
from .postprocess import UPSAMPLE_MODES, upsample

if TYPE_CHECKING:
    from zennit.core import Composite

#: zennit's stabiliser for excitation backprop's normalisations (TorchRay adds 1e-20)
STABILIZER = 1e-6
#: the capability of the methods that change the backward pass of ``nn.ReLU`` modules: a model without them
#: (a ViT's GELU) would silently get the plain gradient
RELU_RULE: tuple[str, ...] = ("relu_activations",)


def _clamp_output_gradient(module: nn.Module, args: Any, output: torch.Tensor) -> None:
    output.register_hook(lambda grad: grad.clamp(min=0))


@contextlib.contextmanager
def _guided(relus: list[nn.Module]) -> Iterator[None]:
    """Guided backprop's rule: the gradient at each ReLU call's output is clamped at zero (a tensor hook)."""
    handles = [m.register_forward_hook(_clamp_output_gradient) for m in relus]
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()


class _DeconvReLU(torch.autograd.Function):
    """``relu(x)`` forward; backward ``relu(grad)``, whatever the sign of ``x`` (deconvnet's ReLU)."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor) -> torch.Tensor:
        return F.relu(x)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> torch.Tensor:
        return F.relu(grad)


@contextlib.contextmanager
def _deconvolving(relus: list[nn.Module]) -> Iterator[None]:
    """Deconvnet's rule: every ReLU module runs :class:`_DeconvReLU` (its ``forward`` restored afterwards)."""
    saved = [m.__dict__.get("forward") for m in relus]
    try:
        for module in relus:
            module.forward = _DeconvReLU.apply
        yield
    finally:
        for module, forward in zip(relus, saved):
            if forward is None:
                module.__dict__.pop("forward", None)
            else:
                module.forward = forward


def modified_relu_gradient(model: nn.Module, inputs: torch.Tensor, target: torch.Tensor,
                           rule: Callable[[list[nn.Module]], ContextManager[None]]) -> torch.Tensor:
    """The target logits' input gradient ``[B,C,H,W]`` with ``rule`` changing the backward of every ReLU module.

    One forward and one backward, with no module backward hooks (which cost a fifth of the pass on the demo
    CNN); the rules act per call, so a ReLU module used several times (torchvision's ResNet blocks) needs no
    split, only the out-of-place activations of :func:`~salbench.methods.hooks.separate_activations`.
    """
    with separate_activations(model, inputs, split_reused=False), torch.enable_grad():
        with rule([m for m in model.modules() if isinstance(m, nn.ReLU)]):
            x = inputs.detach().requires_grad_()
            logits = model(x)
            (grad,) = torch.autograd.grad(logits.gather(1, target.view(-1, 1)).sum(), x)
    return grad.detach()


def guided_backprop(model: nn.Module, inputs: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Guided backpropagation ``[B,C,H,W]``: ReLUs pass only positive gradients at positive inputs.

    The gradient arriving at each ReLU call's output is clamped at zero by a tensor hook; the ReLU's own
    backward then masks it by its positive inputs. This is captum's ``GuidedBackprop`` rule (equal maps,
    tested), by :func:`modified_relu_gradient`.
    """
    return modified_relu_gradient(model, inputs, target, _guided)


def deconvnet(model: nn.Module, inputs: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Deconvolution ``[B,C,H,W]``: each ReLU call passes ``relu`` of the gradient at its output back to its input,
    whatever the input's sign. This is captum's ``Deconvolution`` rule (equal maps, tested), by
    :func:`modified_relu_gradient`, with no extra operator: each ReLU module runs :class:`_DeconvReLU`."""
    return modified_relu_gradient(model, inputs, target, _deconvolving)


@register_method("guided_backprop")
class GuidedBackpropagation(ChannelMethod):
    """Gradient with ReLUs passing only positive signals at positive inputs (Springenberg et al. 2015)."""

    citation = (
        "Springenberg, Dosovitskiy, Brox & Riedmiller. Striving for Simplicity: The All Convolutional Net. "
        "ICLR Workshop 2015. arXiv:1412.6806"
    )
    #: max |.| over colour channels, as for the gradient (Simonyan et al.; TorchRay's pointing game)
    defaults = {"channel_reduction": "max_abs"}
    requires = RELU_RULE

    def attribute_channels(self, model: nn.Module, inputs: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return guided_backprop(model, inputs, target)


@register_method("deconvnet")
class DeconvNet(ChannelMethod):
    """Deconvolution: ReLUs pass the positive part of the backward signal, whatever the input (Zeiler & Fergus 2014)."""

    citation = (
        "Zeiler & Fergus. Visualizing and Understanding Convolutional Networks. ECCV 2014. arXiv:1311.2901"
    )
    defaults = {"channel_reduction": "max_abs"}
    requires = RELU_RULE

    def attribute_channels(self, model: nn.Module, inputs: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return deconvnet(model, inputs, target)


@register_method("guided_gradcam")
class GuidedGradCAM(ChannelMethod):
    """Guided backprop times the upsampled Grad-CAM map of the target layer (Selvaraju et al. 2017)."""

    citation = GradCAM.citation
    defaults = {"layer": None, "upsample": "bilinear", "channel_reduction": "max_abs"}
    needs_layer = True
    requires = RELU_RULE

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        self.gradcam = GradCAM(layer=self.params["layer"], upsample=self.params["upsample"])

    def attribute_channels(self, model: nn.Module, inputs: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        cams = self.gradcam.attribute(model, inputs, target)
        return guided_backprop(model, inputs, target) * cams.unsqueeze(1).to(inputs.dtype)


def classifier_name(model: nn.Module) -> str:
    """Name of the last convolution or linear layer (TorchRay's default classifier layer)."""
    names = [name for name, module in model.named_modules() if isinstance(module, (nn.Conv2d, nn.Linear))]
    if not names:
        raise ValueError("contrastive excitation backprop needs a convolution or linear classifier layer")
    return names[-1]


@register_method("excitation_backprop")
class ExcitationBackprop(Method):
    """Marginal winning probabilities at a layer, summed over its channels (Zhang et al. 2016, as in TorchRay).

    The probability of the target logit is passed down by the excitation rule
    ``P(a_j) = sum_i a_j w+_ij / (sum_k a_k w+_ik) P(a_i)`` (zennit's ``ExcitationBackprop`` composite,
    biases ignored, batch norm passed through as TorchRay does) and read at ``layer``: TorchRay's pointing
    game uses ``features.23`` (pool4) of VGG16 and ``layer3`` of ResNet50; from a model spec the default is
    its ``excitation_layer`` (the analogue one stage below the Grad-CAM layer). The layer map is summed over channels and upsampled to the input.
    """

    citation = (
        "Zhang, Bargal, Lin, Brandt, Shen & Sclaroff. Top-down Neural Attention by Excitation "
        "Backprop. ECCV 2016; IJCV 126:1084-1102, 2018. arXiv:1608.00507"
    )
    defaults: dict[str, Any] = {"layer": None, "upsample": "bilinear"}
    needs_layer = True
    layer_role = "excitation_layer"
    requires = ("propagation_rules",)
    libraries = ("zennit",)

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        check_choice("method", self.name, "upsample", self.params["upsample"], UPSAMPLE_MODES)

    def composite(self, model: nn.Module) -> Composite:
        """zennit's excitation-backprop composite (``Z+`` without bias on linear layers, proportional sums and
        average pools) with batch norm passed through and residual additions as ``Sum`` modules."""
        from zennit.composites import ExcitationBackprop as ExcitationBackpropComposite
        from zennit.rules import Pass
        from zennit.types import BatchNorm

        from .canonizers import residual_canonizers

        return ExcitationBackpropComposite(
            stabilizer=STABILIZER, layer_map=[(BatchNorm, Pass())], zero_params=["bias"],
            canonizers=residual_canonizers(model),
        )

    def layer_signal(self, model: nn.Module, inputs: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """The propagated signal at the layer's output, ``[B,K,h,w]``."""
        name = self.params["layer"]
        with separate_activations(model, inputs):
            layer = resolve_layer(self, model)
            with registered(self.composite(model), model), capture_output(layer) as outputs, torch.enable_grad():
                logits = model(inputs.detach().requires_grad_())
                if len(outputs) != 1:
                    raise ParamError(f"{self.name}: layer {name!r} runs {len(outputs)} times per forward")
                if outputs[0].dim() != 4:
                    shape = tuple(outputs[0].shape)
                    raise ValueError(f"{self.name} needs a spatial [B,K,h,w] layer; {name!r} gives {shape}")
                signal = F.one_hot(target, logits.shape[1]).to(logits.dtype)
                (grad,) = torch.autograd.grad(logits, outputs[0], signal)
        return grad.detach()

    def attribute(self, model: nn.Module, inputs: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        maps = self.layer_signal(model, inputs, target).sum(dim=1)
        if self.params.get("rectify", False):
            maps = maps.clamp(min=0)
        return upsample(maps, tuple(inputs.shape[-2:]), self.params["upsample"]).to(torch.float32)


@register_method("contrastive_excitation_backprop")
class ContrastiveExcitationBackprop(ExcitationBackprop):
    """Excitation backprop of the target minus that of the target with negated classifier weights (Zhang et al. 2016).

    As in TorchRay: the contrastive signal is formed at the classifier (the last convolution or linear
    layer, whose input is TorchRay's contrast layer: VGG16 ``classifier.4``, ResNet50 ``avgpool``), passed
    down by excitation backprop to ``layer`` (see :class:`ExcitationBackprop`), summed over channels and,
    with ``rectify``, clipped at zero as TorchRay's saliency is.
    """

    defaults = {"layer": None, "upsample": "bilinear", "rectify": True}

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        if not isinstance(self.params["rectify"], bool):
            raise ParamError(f"method {self.name!r}: rectify must be true or false, got {self.params['rectify']!r}")

    def composite(self, model: nn.Module) -> Composite:
        """The excitation-backprop rules, with :class:`~salbench.methods.zennit_rules.ContrastiveZPlus` at the
        classifier."""
        from zennit.composites import NameLayerMapComposite

        from .zennit_rules import ContrastiveZPlus

        rules = super().composite(model)
        return NameLayerMapComposite(
            name_map=[((classifier_name(model),), ContrastiveZPlus(STABILIZER))],
            layer_map=rules.layer_map,
            canonizers=rules.canonizers,
        )
