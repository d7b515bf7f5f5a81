"""Saliency methods: importing this package registers every method."""

from . import (  # noqa: F401  (registers the methods)
    attnlrp,
    backprop,
    cam,
    cam_family,
    coda,
    controls,
    deeplift,
    extremal,
    gradient,
    lrp,
    mdm,
    meaningful,
    noise,
    path,
    perturbation,
    rsp,
    transformer,
    variants,
)
from .base import METHODS, ChannelMethod, Method, create_method, list_methods, register_method

__all__ = ["METHODS", "ChannelMethod", "Method", "create_method", "list_methods", "register_method"]
