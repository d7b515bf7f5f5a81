"""Saliency methods: importing this package registers every method."""

from . import backprop, cam, controls, deeplift, gradient, lrp, noise, path  # noqa: F401  (registers the methods)
from .base import METHODS, ChannelMethod, Method, create_method, list_methods, register_method

__all__ = ["METHODS", "ChannelMethod", "Method", "create_method", "list_methods", "register_method"]
