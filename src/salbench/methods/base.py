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
from typing import Any, ClassVar

import torch
from torch import nn

from ..params import resolve_params
from ..registry import Registry

METHODS: Registry[type["Method"]] = Registry("method")


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
    #: needs global average pooling followed by one linear layer (CAM)
    needs_gap_fc: ClassVar[bool] = False
    #: only applies to this model family (e.g. "coda"); None = any
    model_family: ClassVar[str | None] = None
    #: reads the model at all (False for the control baselines)
    uses_model: ClassVar[bool] = True

    def __init__(self, **params: Any) -> None:
        self.params = resolve_params("method", self.name, self.defaults, params)

    @abc.abstractmethod
    def attribute(self, model: nn.Module, inputs: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Maps ``[B,H,W]`` (float32, input resolution) explaining ``model``'s logit ``target`` for ``inputs``."""

    def skip_reason(self, model_spec: Any) -> str | None:
        """Why this method cannot explain a model with ``model_spec`` (None when it can)."""
        if self.model_family is not None and model_spec.family != self.model_family:
            return f"{self.name} needs a {self.model_family} model, {model_spec.arch} is {model_spec.family}"
        if self.needs_gap_fc and not model_spec.gap_fc:
            return f"{self.name} needs global average pooling + one linear layer, {model_spec.arch} has not"
        return None
