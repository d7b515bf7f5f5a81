"""Models with known sanity-check outcomes, for the sanity tests."""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn

from salbench.models.base import ModelSpec, NormalizedClassifier

SIZE = 16
NUM_CLASSES = 4
SPEC = ModelSpec(arch="linear_test", input_size=SIZE, mean=(0.5, 0.4, 0.3), std=(0.2, 0.25, 0.3),
                 target_layer="net.logits")


def linear_model(seed: int = 0) -> NormalizedClassifier:
    """A linear classifier written as one full-image convolution: ``logit_k = <W_k, z> + b_k``.

    Its gradient ``W_k / std`` ignores the input (input-agnostic by construction), changes completely when
    the weights are re-initialised, and differs between classes; the first layer is a Conv2d, so the
    input-shift compensation applies.
    """
    torch.manual_seed(seed)
    net = nn.Sequential(OrderedDict(logits=nn.Conv2d(3, NUM_CLASSES, SIZE), flatten=nn.Flatten()))
    return NormalizedClassifier(net, SPEC).eval()


def images(n: int, seed: int = 1, size: int = SIZE) -> torch.Tensor:
    """``[n,3,size,size]`` pixel images in [0, 1]: smooth random blobs plus noise, so edges and maps vary per image."""
    generator = torch.Generator().manual_seed(seed)
    coarse = torch.rand(n, 3, 4, 4, generator=generator)
    smooth = nn.functional.interpolate(coarse, size=(size, size), mode="bilinear", align_corners=False)
    return (0.8 * smooth + 0.2 * torch.rand(n, 3, size, size, generator=generator)).clamp(0, 1)
