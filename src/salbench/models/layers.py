"""Layer bookkeeping for the sanity checks: which layers a model's randomisation cascade visits."""

from __future__ import annotations

from torch import nn


def randomisation_order(model: nn.Module) -> list[str]:
    """Names of the layers owning parameters (Conv, Linear, BatchNorm, ...), top-down: logits first.

    Registration order is forward order for the architectures here (Sequential stacks, timm
    ResNets), so the reversed list goes from the classifier back to the first convolution.
    """
    owners = [name for name, module in model.named_modules() if any(True for _ in module.parameters(recurse=False))]
    return owners[::-1]
