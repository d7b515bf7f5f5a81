"""Tiny seeded vision transformers (timm and torchvision) for the transformer method tests."""

from __future__ import annotations

import torch

from salbench.models.base import ModelSpec, NormalizedClassifier

NUM_CLASSES = 5


def spec(target_layer: str, size: int | tuple[int, int]) -> ModelSpec:
    side = size if isinstance(size, int) else max(size)
    return ModelSpec(arch="tiny_vit", input_size=side, mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25),
                     target_layer=target_layer, family="vit", lacks={"spatial_feature_maps": "tokens"})


def tiny_vit(seed: int = 0, size: int | tuple[int, int] = 32, depth: int = 2, fused: bool = False,
             **kwargs) -> NormalizedClassifier:
    """timm ViT: 8 px patches, width 32, 2 heads, class token, in eval mode (``fused``: timm's fused attention)."""
    from timm.models.vision_transformer import VisionTransformer

    torch.manual_seed(seed)
    net = VisionTransformer(img_size=size, patch_size=8, embed_dim=32, depth=depth, num_heads=2, mlp_ratio=2.0,
                            num_classes=NUM_CLASSES, **kwargs)
    torch.nn.init.normal_(net.head.weight, std=0.5)  # a larger head than timm's init: gradients well above rounding
    for attn in (block.attn for block in net.blocks):
        attn.fused_attn = fused
    return NormalizedClassifier(net, spec(f"net.blocks.{depth - 1}.norm1", size)).eval()


def tiny_tv_vit(seed: int = 0, size: int = 32, depth: int = 2) -> NormalizedClassifier:
    """torchvision ViT of the same size, its zero-initialised head and class token re-drawn (else no gradient)."""
    from torchvision.models import VisionTransformer

    torch.manual_seed(seed)
    net = VisionTransformer(image_size=size, patch_size=8, num_layers=depth, num_heads=2, hidden_dim=32, mlp_dim=64,
                            num_classes=NUM_CLASSES)
    torch.nn.init.normal_(net.heads.head.weight, std=0.5)
    torch.nn.init.normal_(net.class_token, std=0.5)
    return NormalizedClassifier(net, spec(f"net.encoder.layers.encoder_layer_{depth - 1}.ln_1", size)).eval()


def pixels(n: int, size: int | tuple[int, int] = 32, seed: int = 1) -> torch.Tensor:
    """``n`` seeded images in [0, 1]."""
    h, w = (size, size) if isinstance(size, int) else size
    return torch.rand(n, 3, h, w, generator=torch.Generator().manual_seed(seed))
