"""The method contract and registry.

Every saliency method is a class registered with :func:`register_method` and built by
:func:`create_method`. One contract::

    method.attribute(model, inputs[B,C,H,W], target[B]) -> Tensor[B,H,W]  (float32, input resolution)

``inputs`` are pixel-space floats in [0, 1]; the model normalises internally, so pixel-space
baselines are unambiguous. Maps are signed where the method is signed. Turning a multi-channel
attribution into one map, and upsampling a layer map, are explicit, recorded parameters
(``channel_reduction``, ``upsample``), never hidden normalisation.
"""

from __future__ import annotations

import abc
import importlib
from typing import Any, ClassVar

import torch
from torch import nn

from ..models.base import NormalizedClassifier
from ..params import ParamError, check_choice, resolve_params
from ..registry import Registry
from .postprocess import CHANNEL_REDUCTIONS, reduce_channels

METHODS: Registry[type["Method"]] = Registry("method")
#: what every layer method (``needs_layer``) needs: convolutional feature maps over the image grid (a vision
#: transformer's tokens are not, without a reshape)
LAYER_CAPABILITY = "spatial_feature_maps"


def register_method(name: str):
    """Class decorator: register a :class:`Method` subclass under ``name`` (a duplicate is an error)."""

    def decorator(cls: type[Method]) -> type[Method]:
        cls.name = name
        return METHODS.register(name)(cls)

    return decorator


def create_method(name: str, **params: Any) -> "Method":
    """Build the method registered as ``name`` with ``params`` over its paper defaults."""
    return METHODS.get(name)(**params)


def list_methods(filter: str = "*") -> list[str]:
    """Registered method names matching the fnmatch ``filter``."""
    return METHODS.names(filter)


class Method(abc.ABC):
    """Base of every saliency method.

    Class attributes declare what a method needs, so the workflow schedules only valid
    (model, method) pairs and says why a pair was skipped.
    """

    name: ClassVar[str] = ""
    citation: ClassVar[str] = ""
    #: paper hyperparameters; config overrides are checked against these keys
    defaults: ClassVar[dict[str, Any]] = {}
    #: needs a target layer (``layer`` param, from the model spec unless overridden)
    needs_layer: ClassVar[bool] = False
    #: which of the model spec's layers supplies ``layer`` (see :meth:`ModelSpec.layer`)
    layer_role: ClassVar[str] = "target_layer"
    #: needs global average pooling followed by one linear layer (CAM)
    needs_gap_fc: ClassVar[bool] = False
    #: only applies to this model family (e.g. "coda"); None = any
    model_family: ClassVar[str | None] = None
    #: model capabilities the method relies on, e.g. "propagation_rules" (layer-wise relevance rules for every
    #: module); an architecture lists what it lacks in ``ModelSpec.lacks``
    requires: ClassVar[tuple[str, ...]] = ()
    #: reads the model at all (False for the control baselines)
    uses_model: ClassVar[bool] = True
    #: heavy libraries (e.g. "captum") the method imports where it runs: imported when it is built, so a job
    #: loads only its own method's (see :mod:`~salbench.methods.lazy`) and its timed compute holds no import
    libraries: ClassVar[tuple[str, ...]] = ()

    def __init__(self, **params: Any) -> None:
        self.params = resolve_params("method", self.name, self.defaults, params)
        for library in self.libraries:
            importlib.import_module(library)

    @abc.abstractmethod
    def attribute(self, model: nn.Module, inputs: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Maps ``[B,H,W]`` (float32, input resolution) explaining ``model``'s logit ``target`` for ``inputs``."""

    @classmethod
    def capabilities(cls) -> tuple[str, ...]:
        """What the method needs of a model: ``requires``, plus ``spatial_feature_maps`` for a layer method."""
        return (*cls.requires, *((LAYER_CAPABILITY,) if cls.needs_layer else ()))

    def skip_reason(self, model_spec: Any) -> str | None:
        """Why this method cannot explain a model with ``model_spec`` (None when it can)."""
        if self.model_family is not None and model_spec.family != self.model_family:
            return f"{self.name} needs a {self.model_family} model, {model_spec.arch} is {model_spec.family}"
        if self.needs_gap_fc and not model_spec.gap_fc:
            return f"{self.name} needs global average pooling + one linear layer, {model_spec.arch} has not"
        for capability in self.capabilities():
            if capability in model_spec.lacks:
                return f"{self.name} needs {capability}: {model_spec.lacks[capability]}"
        return None


def check_number(method: Method, param: str, minimum: float, integer: bool = False) -> None:
    """Raise a :class:`ParamError` unless ``method.params[param]`` is a number (int if ``integer``) >= ``minimum``."""
    value = method.params[param]
    kinds = (int,) if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, kinds) or value < minimum:
        kind = "an integer" if integer else "a number"
        raise ParamError(f"method {method.name!r}: {param} must be {kind} >= {minimum}, got {value!r}")


def normalisation(model: nn.Module) -> tuple[nn.Module, torch.Tensor | float, torch.Tensor | float]:
    """``(net, mean, std)`` of a :class:`NormalizedClassifier` (``[1,C,1,1]`` buffers); ``(model, 0.0, 1.0)`` otherwise.

    Methods that work in the network's own input space (LRP relevance, the normalised-zero baseline)
    use this to step inside the wrapper.
    """
    if isinstance(model, NormalizedClassifier):
        return model.net, model.mean, model.std
    return model, 0.0, 1.0


class ChannelMethod(Method):
    """A method whose attribution lives on the input channels, reduced to one map by ``channel_reduction``.

    Subclasses implement :meth:`attribute_channels` (``[B,C,H,W]``) and put ``channel_reduction`` in their
    ``defaults``. Wrappers that aggregate several attributions (SmoothGrad, VarGrad) aggregate the channel
    attributions first and reduce once, as the papers do.
    """

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        check_choice("method", self.name, "channel_reduction", self.params["channel_reduction"], CHANNEL_REDUCTIONS)

    @abc.abstractmethod
    def attribute_channels(self, model: nn.Module, inputs: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Signed attribution ``[B,C,H,W]`` in the inputs' dtype, before channel reduction."""

    def reduce(self, attribution: torch.Tensor) -> torch.Tensor:
        """``[B,C,H,W]`` -> ``[B,H,W]`` float32 by this method's recorded ``channel_reduction``."""
        return reduce_channels(attribution, self.params["channel_reduction"]).to(torch.float32)

    def attribute(self, model: nn.Module, inputs: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return self.reduce(self.attribute_channels(model, inputs, target))
