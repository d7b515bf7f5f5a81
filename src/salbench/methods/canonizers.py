"""zennit canonizers: rewrite a model into an equivalent form that relevance rules apply to.

* Batch norm that directly follows a convolution or linear layer is merged into it
  (zennit's :class:`~zennit.canonizers.SequentialMergeBatchNorm`, guarded so that it only merges
  when the channel counts agree: in a DenseNet the batch norm after a layer's last convolution normalises
  the concatenated features of the next layer, which must not be merged; zennit's layer maps then pass
  relevance through such a batch norm unchanged).
* torchvision's DenseNet applies its last ReLU and global average pooling as functions;
  :class:`DenseNetCanonizer` makes them modules, so activation rules and the average-pool rule reach them
  (applied by :func:`~salbench.methods.hooks.separate_activations` for every propagation method).
* Residual additions become a :class:`zennit.layer.Sum` module so the relevance splits in proportion to
  the two summands: zennit's :class:`~zennit.torchvision.ResNetCanonizer` for torchvision ResNets, and
  :class:`TimmResNetCanonizer` (written here) for timm's ``BasicBlock``/``Bottleneck`` (timm ResNets and
  the project's ``small_resnet``).

Architectures are matched by :func:`~salbench.methods.lazy.loaded_classes`, so a model built without timm
never loads it. This module imports zennit (and with it torchvision): method modules import it inside the code
paths that apply canonizers, so jobs of other methods never load them.

References: Motzkus, Weber & Lapuschkin, "Measurably Stronger Explanation Reliability via Model
Canonization", ICIP 2022 (arXiv:2202.06621); Anders et al., "Software for Dataset-wide XAI: From Local
Explanations to Global Insights with Zennit, CoRelAy, and ViRelAy", arXiv:2106.13200.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
from torch import nn
from zennit.canonizers import AttributeCanonizer, Canonizer, SequentialMergeBatchNorm
from zennit.core import collect_leaves
from zennit.layer import Sum
from zennit.torchvision import ResNetBasicBlockCanonizer, ResNetBottleneckCanonizer, ResNetCanonizer

from .lazy import TIMM_RESNET, TV_DENSENET, TV_RESNET, loaded_classes

if TYPE_CHECKING:
    from timm.models import resnet as timm_resnet
    from torchvision.models import densenet as tv_densenet


def _out_channels(module: nn.Module) -> int | None:
    return getattr(module, "out_channels", getattr(module, "out_features", None))


class MatchedMergeBatchNorm(SequentialMergeBatchNorm):
    """:class:`SequentialMergeBatchNorm` that merges only when the batch norm has the layer's output channels."""

    def apply(self, root_module: nn.Module) -> list[Canonizer]:
        instances = []
        last_leaf = None
        for leaf in collect_leaves(root_module):
            if (
                isinstance(last_leaf, self.linear_type)
                and isinstance(leaf, self.batch_norm_type)
                and _out_channels(last_leaf) == leaf.num_features
            ):
                instance = self.copy()
                instance.register((last_leaf,), leaf)
                instances.append(instance)
            last_leaf = leaf
        return instances


def _timm_basic_branch(block: timm_resnet.BasicBlock, x: torch.Tensor) -> torch.Tensor:
    out = block.act1(block.drop_block(block.bn1(block.conv1(x))))
    return block.bn2(block.conv2(block.aa(out)))


def _timm_bottleneck_branch(block: timm_resnet.Bottleneck, x: torch.Tensor) -> torch.Tensor:
    out = block.act1(block.bn1(block.conv1(x)))
    out = block.act2(block.drop_block(block.bn2(block.conv2(out))))
    return block.bn3(block.conv3(block.aa(out)))


def _timm_block_forward(self: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """timm's block forward with the residual addition done by the ``canonizer_sum`` module."""
    if isinstance(self, loaded_classes(TIMM_RESNET, "Bottleneck")):
        out, act = _timm_bottleneck_branch(self, x), self.act3
    else:
        out, act = _timm_basic_branch(self, x), self.act2
    if self.se is not None:
        out = self.se(out)
    if self.drop_path is not None:
        out = self.drop_path(out)
    shortcut = x if self.downsample is None else self.downsample(x)
    return act(self.canonizer_sum(torch.stack([shortcut, out], dim=-1)))


class TimmResNetCanonizer(AttributeCanonizer):
    """Gives timm ResNet blocks a ``Sum`` module for the residual addition (batch norm is merged separately)."""

    def __init__(self) -> None:
        super().__init__(self._attribute_map)

    @staticmethod
    def _attribute_map(name: str, module: nn.Module) -> dict[str, Any] | None:
        if isinstance(module, loaded_classes(TIMM_RESNET, "BasicBlock", "Bottleneck")):
            return {"forward": _timm_block_forward.__get__(module), "canonizer_sum": Sum()}
        return None

    def copy(self) -> "TimmResNetCanonizer":
        return TimmResNetCanonizer()


def _densenet_forward(self: tv_densenet.DenseNet, x: torch.Tensor) -> torch.Tensor:
    """torchvision's DenseNet forward with the final ReLU and average pooling as modules."""
    out = self.canonizer_pool(self.canonizer_relu(self.features(x)))
    return self.classifier(torch.flatten(out, 1))


class DenseNetCanonizer(AttributeCanonizer):
    """Gives a torchvision DenseNet modules for its functional final ReLU and global average pooling."""

    def __init__(self) -> None:
        super().__init__(self._attribute_map)

    @staticmethod
    def _attribute_map(name: str, module: nn.Module) -> dict[str, Any] | None:
        if isinstance(module, loaded_classes(TV_DENSENET, "DenseNet")):
            return {
                "forward": _densenet_forward.__get__(module),
                "canonizer_relu": nn.ReLU(),
                "canonizer_pool": nn.AdaptiveAvgPool2d(1),
            }
        return None

    def copy(self) -> "DenseNetCanonizer":
        return DenseNetCanonizer()


def _module_types(model: nn.Module) -> set[type]:
    """The classes of ``model``'s modules (one walk of the module tree, for several questions)."""
    return {type(m) for m in model.modules()}


def _has(kinds: set[type], types: tuple[type, ...]) -> bool:
    return any(issubclass(kind, types) for kind in kinds)


def _residual_canonizers(kinds: set[type]) -> list[Canonizer]:
    canonizers: list[Canonizer] = []
    if _has(kinds, loaded_classes(TV_RESNET, "BasicBlock", "Bottleneck")):
        canonizers += [ResNetBottleneckCanonizer(), ResNetBasicBlockCanonizer()]
    if _has(kinds, loaded_classes(TIMM_RESNET, "BasicBlock", "Bottleneck")):
        canonizers.append(TimmResNetCanonizer())
    return canonizers


def residual_canonizers(model: nn.Module) -> list[Canonizer]:
    """Canonizers that route ``model``'s residual additions through ``Sum`` modules (no batch-norm merge)."""
    return _residual_canonizers(_module_types(model))


def lrp_canonizers(model: nn.Module) -> list[Canonizer]:
    """Batch-norm merging plus residual sums: zennit's ``ResNetCanonizer`` for torchvision ResNets."""
    kinds = _module_types(model)
    if _has(kinds, loaded_classes(TV_RESNET, "BasicBlock", "Bottleneck")):
        return [ResNetCanonizer()]
    return [MatchedMergeBatchNorm(), *_residual_canonizers(kinds)]
