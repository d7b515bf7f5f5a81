"""``small_cnn``: a VGG-style CNN for the embedded default (64 px, trains on the CPU in minutes).

Four blocks of 3x3 conv (bias-free) + batch norm + ReLU, max-pooling after the first three, then
global average pooling and one linear layer, so CAM applies. Batch norm is what lets it train in
about a minute on two CPU cores; it directly follows each conv inside one ``nn.Sequential``, so LRP
canonizers can fold it into the conv. Every ReLU is its own module and not in-place, as DeepLIFT
and LRP hooks need.
"""

from __future__ import annotations

import torch
from torch import nn

from .base import ModelSpec, register_arch

WIDTHS = (16, 32, 64, 128)

SPEC = ModelSpec(
    arch="small_cnn",
    input_size=64,
    mean=(0.5, 0.5, 0.5),
    std=(0.25, 0.25, 0.25),
    target_layer="net.features.14",  # ReLU after the last conv: 8 x 8 at 64 px
    gap_fc=True,
    cpu_channels_last=True,
    layerwise=("net.features.2", "net.features.6", "net.features.10", "net.features.14"),  # each conv's ReLU output
    extra={
        "excitation_layer": "net.features.11",  # the last max pool (VGG16's pool4 analogue): 8 x 8
        # top-down blocks for the randomisation checks: the head, then each conv with its batch norm
        "randomisation_blocks": [["fc", ["net.fc"]]] + [
            [f"conv{4 - i}", [f"net.features.{j}", f"net.features.{j + 1}"]] for i, j in enumerate((12, 8, 4, 0))
        ],
    },
)


class SmallCNN(nn.Module):
    """``features`` (conv stack) -> ``pool`` (global average) -> ``fc`` (logits)."""

    def __init__(self, num_classes: int, widths: tuple[int, ...] = WIDTHS) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        channels = 3
        for i, width in enumerate(widths):
            layers += [nn.Conv2d(channels, width, kernel_size=3, padding=1, bias=False), nn.BatchNorm2d(width),
                       nn.ReLU(inplace=False)]
            if i < len(widths) - 1:
                layers.append(nn.MaxPool2d(2))
            channels = width
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(channels, num_classes)
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, nonlinearity="relu")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.flatten(self.pool(self.features(x))))


@register_arch("small_cnn", SPEC)
def small_cnn(num_classes: int) -> nn.Module:
    """VGG-style 4-conv CNN (batch norm) with GAP + linear head, 64 px input (CPU-trainable)."""
    return SmallCNN(num_classes)
