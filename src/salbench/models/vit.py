"""Vision transformers: ``small_vit`` for the embedded default, and the transformer spec of any timm or
torchvision ViT (Dosovitskiy et al., ICLR 2021, arXiv:2010.11929).

``small_vit`` is a timm ``VisionTransformer`` sized for the CPU: 64 px input, an 8 x 8 grid of tokens (one per
8 px patch) plus the class token, 4 blocks of width 64 with 4 heads, class-token pooling. Its patch embedding is
a convolutional stem (:class:`ConvStemEmbed`: the hybrid architecture of Dosovitskiy et al. §3.1; early
convolutions, Xiao et al., NeurIPS 2021, arXiv:2106.14881): with the linear 8 px patch projection the ViT stays
near chance for most of a CPU budget on the shapes data (validation accuracy 0.37 after 40 epochs), with the stem
it trains like the CNNs (see ``config/config.yaml``).

The transformer spec (:func:`vit_spec_fields`, layout from ``../shared/references/transformer-methods.md`` §0, §5,
§7, §8) says, for timm (``blocks``, ``patch_embed.proj``, ``cls_token``) and torchvision (``encoder.layers``,
``conv_proj``, ``class_token``) alike:

* ``target_layer``: the layer norm before the last block's attention (timm ``blocks[-1].norm1``, torchvision
  ``encoder.layers[-1].ln_1``), where pytorch-grad-cam's ViT example reads token CAMs;
* ``extra["vit_blocks"]``, ``extra["prefix_tokens"]``, ``extra["token_grid"]``: the transformer blocks in
  forward order, the tokens before the patch tokens (class, register, distillation) and the patch grid
  ``[rows, cols]`` (the patch tokens are its row-major flattening);
* ``extra["randomisation_blocks"]``: top-down stages for the model checks: the head (with the final norm),
  one stage per block from the last to the first, then the embedding (patch convolution, class token and
  position embeddings; their owner module is named by a prefix that only the longest-prefix rule of
  :func:`~salbench.sanity.randomisation.stage_groups` leaves to them);
* ``extra["input_layer"]``: the patch-embedding convolution, where input invariance compensates a mean shift;
* ``lacks``: spatial feature maps (the classic layer methods read convolutional maps), relevance rules
  for attention and layer norm (zennit's LRP has none) and ReLU activations (GELU only: guided backprop and
  deconvnet, which change the ReLUs' backward pass, would silently be the plain gradient).

timm computes attention with ``F.scaled_dot_product_attention`` by default, which never calls ``attn_drop``, so
hooks that read the attention maps there never fire: every timm ViT built here has ``fused_attn`` switched off
on each attention module (:func:`unfuse_attention`; same logits, ``transformer-methods.md`` §0).
"""

from __future__ import annotations

from typing import Any

from torch import nn

from ..model_config import VIT_LACKS
from .base import ModelSpec, register_arch

FAMILY = "vit"

IMAGE_SIZE, PATCH_SIZE, WIDTH, DEPTH, HEADS, MLP_RATIO = 64, 8, 64, 4, 4, 2.0
#: channels of the stem's three 3 x 3 convolutions (the demo CNN's first three), each halving the resolution
STEM_WIDTHS = (16, 32, 64)


def timm_layout(depth: int, prefix_tokens: int, grid: tuple[int, int], head: tuple[str, ...] = ("head", "norm"),
                embedding: tuple[str, ...] = ("patch_embed",), input_layer: str = "patch_embed.proj",
                net: str = "net") -> dict[str, Any]:
    """Spec fields of a timm ``VisionTransformer`` with ``depth`` blocks inside the wrapper's ``net``.

    ``head``: the modules of the head stage (``head``, ``head_dist``, ``norm``, ``fc_norm``, ``attn_pool`` where
    present); ``embedding``: the embedding modules besides the token owner ``net`` itself; ``input_layer``: the
    convolution that first sees the input (a hybrid ViT's is its backbone's stem).
    """
    blocks = [f"{net}.blocks.{b}" for b in range(depth)]
    return _fields(blocks, f"{blocks[-1]}.norm1", f"{net}.{input_layer}", prefix_tokens, grid,
                   [f"{net}.{name}" for name in head], [*(f"{net}.{name}" for name in embedding), net])


def torchvision_layout(depth: int, grid: tuple[int, int], net: str = "net") -> dict[str, Any]:
    """Spec fields of a torchvision ``VisionTransformer`` (class token only) with ``depth`` encoder layers."""
    blocks = [f"{net}.encoder.layers.encoder_layer_{b}" for b in range(depth)]
    return _fields(blocks, f"{blocks[-1]}.ln_1", f"{net}.conv_proj", 1, grid, [f"{net}.heads", f"{net}.encoder.ln"],
                   [f"{net}.conv_proj", f"{net}.encoder", net])  # encoder owns pos_embedding, net class_token


def _fields(blocks: list[str], target: str, input_layer: str, prefix_tokens: int, grid: tuple[int, int],
            head: list[str], embedding: list[str]) -> dict[str, Any]:
    stages = [["head", head], *([f"block{b}", [name]] for b, name in reversed(list(enumerate(blocks)))),
              ["embedding", embedding]]
    return {"target_layer": target, "family": FAMILY, "lacks": dict(VIT_LACKS),
            "extra": {"vit_blocks": blocks, "prefix_tokens": prefix_tokens, "token_grid": list(grid),
                      "input_layer": input_layer, "randomisation_blocks": stages}}


def vit_spec_fields(net: nn.Module, prefix: str = "net") -> dict[str, Any]:
    """The transformer spec fields (see the module docstring) of a built timm or torchvision ViT ``net``,
    named as the wrapper (``prefix``) sees them. Raises :class:`TypeError` for any other network."""
    from torchvision.models import VisionTransformer as TorchvisionViT

    if isinstance(net, TorchvisionViT):
        side = net.image_size // net.patch_size
        return torchvision_layout(len(net.encoder.layers), (side, side), prefix)
    from timm.models.vision_transformer import VisionTransformer

    if isinstance(net, VisionTransformer):
        children = {name for name, child in net.named_children() if any(True for _ in child.parameters())}
        head = tuple(name for name in ("head", "head_dist", "norm", "fc_norm", "attn_pool") if name in children)
        embedding = tuple(name for name in ("patch_embed", "norm_pre") if name in children)
        grid = tuple(int(n) for n in net.patch_embed.grid_size)
        first = next(name for name, module in net.patch_embed.named_modules() if isinstance(module, nn.Conv2d))
        return timm_layout(len(net.blocks), int(net.num_prefix_tokens), grid, head, embedding,
                           f"patch_embed.{first}", prefix)
    raise TypeError(f"{type(net).__name__} is neither a timm nor a torchvision VisionTransformer")


def unfuse_attention(net: nn.Module) -> nn.Module:
    """``net`` with ``fused_attn = False`` on every timm attention module, so the softmax attention is computed
    explicitly and passes ``attn_drop`` (hooks read it there); the logits are the same (``transformer-methods.md``
    §0). Per instance: timm's process-wide default is left alone."""
    for module in net.modules():
        if hasattr(module, "fused_attn"):
            module.fused_attn = False
    return net


def conv_stem(in_chans: int, embed_dim: int, widths: tuple[int, ...], patch_size: int) -> nn.Sequential:
    """3 x 3 convolution, batch norm, GELU and 2 x 2 max pooling per width, then a 1 x 1 projection to
    ``embed_dim``: a ``patch_size`` stride in all (``2 ** len(widths)``). GELU, as in the blocks: the ViT has no
    ReLU for guided backprop to modify (``VIT_LACKS``)."""
    if 2 ** len(widths) != patch_size:
        raise ValueError(f"a stem of {len(widths)} poolings has stride {2 ** len(widths)}, not patch size {patch_size}")
    layers: list[nn.Module] = []
    for i, width in enumerate(widths):
        layers += [nn.Conv2d(in_chans, width, 3, padding=1, bias=i == 0), nn.BatchNorm2d(width), nn.GELU(),
                   nn.MaxPool2d(2)]
        in_chans = width
    return nn.Sequential(*layers, nn.Conv2d(in_chans, embed_dim, 1))


def conv_stem_embed(widths: tuple[int, ...]) -> type[nn.Module]:
    """A timm ``PatchEmbed`` class whose projection is :func:`conv_stem` with ``widths``: same token grid, same
    ``patch_embed.proj`` owner (the first convolution keeps a bias, for the input-invariance shift)."""
    from timm.layers import PatchEmbed

    class ConvStemEmbed(PatchEmbed):
        def __init__(self, **kwargs: Any) -> None:
            super().__init__(**kwargs)
            self.proj = conv_stem(kwargs.get("in_chans", 3), kwargs["embed_dim"], widths, self.patch_size[0])

    return ConvStemEmbed


SPEC = ModelSpec(arch="small_vit", input_size=IMAGE_SIZE, mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25),
                 **timm_layout(DEPTH, 1, (IMAGE_SIZE // PATCH_SIZE,) * 2, input_layer="patch_embed.proj.0"))


@register_arch("small_vit", SPEC)
def small_vit(num_classes: int) -> nn.Module:
    """Small timm ViT, 64 px input: conv-stem tokens (8 x 8), 4 blocks of width 64, 4 heads, class token."""
    from timm.models.vision_transformer import VisionTransformer

    net = VisionTransformer(img_size=IMAGE_SIZE, patch_size=PATCH_SIZE, num_classes=num_classes, embed_dim=WIDTH,
                            depth=DEPTH, num_heads=HEADS, mlp_ratio=MLP_RATIO, qkv_bias=True, global_pool="token",
                            embed_layer=conv_stem_embed(STEM_WIDTHS))
    return unfuse_attention(net)
