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


def trained_cnn(seed: int = 0, n: int = 64, epochs: int = 40) -> NormalizedClassifier:
    """A 2-conv + linear CNN trained (Adam, full batch) on two-class :func:`two_class_images`: a small model whose
    maps depend on learned weights, as in the reference's noise-trap toy (newer-checks.md §3)."""
    torch.manual_seed(seed)
    net = nn.Sequential(OrderedDict(conv1=nn.Conv2d(3, 8, 3, padding=1), relu1=nn.ReLU(),
                                    conv2=nn.Conv2d(8, 8, 3, padding=1), relu2=nn.ReLU(),
                                    flatten=nn.Flatten(), fc=nn.Linear(8 * SIZE * SIZE, 2)))
    model = NormalizedClassifier(net, SPEC)
    x, y = two_class_images(n, seed)
    optimiser = torch.optim.Adam(model.parameters(), lr=3e-3)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny tensors: threads only contend (40x slower on a busy machine)
    try:
        for _ in range(epochs):
            optimiser.zero_grad()
            nn.functional.cross_entropy(model(x), y).backward()
            optimiser.step()
    finally:
        torch.set_num_threads(threads)
    return model.eval()


def two_class_images(n: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` images of :func:`images` with a bright 4 px square in the top-left (class 0) or bottom-right (class 1)."""
    x, y = images(n, seed=seed + 10), torch.arange(n) % 2
    x[y == 0, :, 2:6, 2:6] = 1.0
    x[y == 1, :, -6:-2, -6:-2] = 1.0
    return x, y
