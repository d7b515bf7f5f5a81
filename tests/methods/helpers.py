"""Tiny seeded models for method tests (independent of salbench.models' real architectures)."""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

import torch
from torch import nn

from salbench.methods import METHODS, Method
from salbench.models.base import ModelSpec, NormalizedClassifier

SIZE = 16
NUM_CLASSES = 4
SPEC = ModelSpec(
    arch="tiny_test_cnn",
    input_size=SIZE,
    mean=(0.485, 0.456, 0.406),
    std=(0.229, 0.224, 0.225),
    target_layer="net.relu3",
    gap_fc=True,
)


#: cheap settings for the costly methods (their paper defaults take minutes per item)
CHEAP_PARAMS = {
    "rise": {"n_masks": 50, "cells": 4},
    "mdm": {"scales": [2, 3], "min_count": 1, "max_iter": 3},
    "meaningful_perturbation": {"max_iter": 2, "mask_size": 4, "sigma": 2.0},
    "extremal_perturbation": {"areas": [0.1], "max_iter": 2, "step": 4, "sigma": 4.0, "max_blur": 4.0},
}


def tiny_model(seed: int = 0) -> NormalizedClassifier:
    """VGG-style conv net (separate non-inplace ReLUs, one max-pool, GAP + linear) in eval mode."""
    torch.manual_seed(seed)
    net = nn.Sequential(
        OrderedDict(
            conv1=nn.Conv2d(3, 6, 3, padding=1),
            relu1=nn.ReLU(),
            conv2=nn.Conv2d(6, 8, 3, padding=1),
            relu2=nn.ReLU(),
            pool=nn.MaxPool2d(2),
            conv3=nn.Conv2d(8, 8, 3, padding=1),
            relu3=nn.ReLU(),
            gap=nn.AdaptiveAvgPool2d(1),
            flatten=nn.Flatten(),
            fc=nn.Linear(8, NUM_CLASSES),
        )
    )
    return NormalizedClassifier(net, SPEC).eval()


class QuadrantMask(nn.Module):
    """Zeroes everything outside the top-left quadrant."""

    def __init__(self, size: int) -> None:
        super().__init__()
        mask = torch.zeros(1, 1, size, size)
        mask[..., : size // 2, : size // 2] = 1
        self.register_buffer("mask", mask)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.mask


def quadrant_model(seed: int = 0) -> NormalizedClassifier:
    """A model that only sees the top-left quadrant; positive class weights make its Grad-CAM non-trivial."""
    torch.manual_seed(seed)
    net = nn.Sequential(
        OrderedDict(
            quadrant=QuadrantMask(SIZE),
            conv=nn.Conv2d(3, 4, 3, padding=1, bias=False),
            relu=nn.ReLU(),
            gap=nn.AdaptiveAvgPool2d(1),
            flatten=nn.Flatten(),
            fc=nn.Linear(4, NUM_CLASSES),
        )
    )
    with torch.no_grad():
        net.fc.weight.abs_()
    return NormalizedClassifier(net, SPEC).eval()


def images(n: int = 3, seed: int = 1, size: int = SIZE) -> torch.Tensor:
    """``[n,3,size,size]`` pixel-space images in [0, 1]."""
    return torch.rand(n, 3, size, size, generator=torch.Generator().manual_seed(seed))


def make_method(name: str, spec: ModelSpec = SPEC, **params: Any) -> Method:
    """Build a method as the pipeline does: layer methods get the spec's layer for their role."""
    method_cls = METHODS.get(name)
    if method_cls.needs_layer:
        params.setdefault("layer", spec.layer(method_cls.layer_role))
    return method_cls(**params)


def small_archs() -> list[str]:
    """Registered architectures small enough for CPU tests (input <= 64 px): the embedded default's models and
    CoDA's CIFAR-10 net, not the 224 px ImageNet ones (their specs are tested in tests/models/)."""
    from salbench.config import load_catalog

    archs = load_catalog()["archs"]
    return [name for name in sorted(archs) if archs[name]["spec"]["input_size"] <= 64]
