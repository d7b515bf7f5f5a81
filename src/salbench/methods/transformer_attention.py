"""Vision-transformer internals for attention-based methods: token layout, attention probabilities, their inputs.

Two layouts (references/transformer-methods.md §0): timm's ``VisionTransformer`` (DeiT included) and torchvision's.
:func:`token_layout` says how the patch tokens lie on the image grid; :func:`recorded_blocks` records, for one
forward pass, every block's attention ``A_b`` (``[B,H,N,N]``, after softmax, on the autograd graph) and, on
request, the tensors a relevance pass needs. timm's fused attention never materialises ``A``, so it is switched
off per call; torchvision's ``nn.MultiheadAttention`` runs with ``need_weights=False`` and returns weights off the
graph anyway, so its forward is replaced per call by the same computation written out. Every hook, flag and
replaced forward is restored in a ``finally``.
"""

from __future__ import annotations

import abc
import contextlib
import math
import types
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

import torch
import torch.nn.functional as F
from torch import nn

from ..params import ParamError
from .lazy import loaded_classes

TIMM_VIT, TV_VIT = "timm.models.vision_transformer", "torchvision.models.vision_transformer"


@dataclass(frozen=True)
class TokenLayout:
    """``prefix`` leading tokens (class, registers, distillation), then ``grid[0] x grid[1]`` patches, row-major."""

    prefix: int
    grid: tuple[int, int]

    def to_grid(self, tokens: torch.Tensor) -> torch.Tensor:
        """``[B,N,D]`` tokens -> ``[B,D,gh,gw]`` patch grid (prefix dropped; pytorch-grad-cam's reshape_transform)."""
        b, n, d = tokens.shape
        patches = self.grid[0] * self.grid[1]
        if n != self.prefix + patches:
            raise ValueError(f"expected {self.prefix} prefix + {patches} patch tokens, got {n}")
        return tokens[:, self.prefix :].transpose(1, 2).reshape(b, d, *self.grid)

    def from_grid(self, grid: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        """``tokens`` with their patch tokens read back from ``grid`` (:meth:`to_grid`'s inverse; equal values)."""
        return torch.cat([tokens[:, : self.prefix], grid.flatten(2).transpose(1, 2)], dim=1)

    def patch_map(self, rows: torch.Tensor) -> torch.Tensor:
        """``[B,N]`` relevance of every key token -> ``[B,gh,gw]`` map of the patch tokens."""
        return rows[:, self.prefix :].reshape(rows.shape[0], *self.grid)


@dataclass
class BlockRecord:
    """One block's tensors from the last forward pass (``None`` where not recorded).

    ``attention``: ``[B,H,N,N]``; ``q, k, v``: ``[B,H,N,d]`` (q unscaled, after timm's q/k norms); ``context``:
    ``[B,N,D]`` input of the output projection; the rest are the residual stream and MLP tensors a relevance
    pass reads: ``x_in`` (block input), ``attn_in`` (normed input of the attention), ``attn_branch`` (what the
    first residual add adds), ``x_mid``, ``mlp_in``, ``hidden`` (input of the second MLP linear), ``mlp_branch``.
    """

    attention: torch.Tensor | None = None
    tensors: dict[str, torch.Tensor] = field(default_factory=dict)


class Layout(abc.ABC):
    """Where a transformer keeps its parts; a subclass names the modules of one library's layout."""

    def __init__(self, net: nn.Module, blocks: list[nn.Module], tokens: TokenLayout) -> None:
        self.net, self.blocks, self.tokens = net, blocks, tokens

    @abc.abstractmethod
    def qkv_weight(self, block: nn.Module) -> torch.Tensor:
        """``[3D,D]`` packed query, key and value projection (rows: q, k, v; each head-major)."""

    @abc.abstractmethod
    def proj_weight(self, block: nn.Module) -> torch.Tensor:
        """``[D,D]`` output projection of the attention."""

    @abc.abstractmethod
    def mlp_linears(self, block: nn.Module) -> tuple[nn.Linear, nn.Linear]:
        """The MLP's two linear layers."""

    @abc.abstractmethod
    def parts(self, block: nn.Module) -> dict[str, tuple[nn.Module, str]]:
        """Record name -> (module, ``"in"``: its first input, or ``"out"``: its output); see :class:`BlockRecord`."""

    @abc.abstractmethod
    def head(self) -> nn.Linear:
        """The classifier."""

    @abc.abstractmethod
    def pools_class_token(self) -> bool:
        """Whether the classifier reads the class token of the final norm's output and nothing else."""

    @abc.abstractmethod
    def exposed(self, records: list[BlockRecord], with_inputs: bool) -> contextlib.AbstractContextManager:
        """Within the block, every forward fills ``records[b].attention`` (and q, k, v, context if ``with_inputs``)."""


class TimmLayout(Layout):
    """timm ``VisionTransformer``: ``blocks[b].attn`` (qkv, attn_drop, proj), ``norm1/2``, ``drop_path1/2``, ``mlp``."""

    def qkv_weight(self, block):
        return block.attn.qkv.weight

    def proj_weight(self, block):
        return block.attn.proj.weight

    def parts(self, block):
        return {"x_in": (block, "in"), "attn_in": (block.norm1, "out"), "attn_branch": (block.drop_path1, "out"),
                "x_mid": (block.norm2, "in"), "mlp_in": (block.norm2, "out"), "hidden": (block.mlp.fc2, "in"),
                "mlp_branch": (block.drop_path2, "out")}

    def mlp_linears(self, block):
        return block.mlp.fc1, block.mlp.fc2

    def head(self):
        return self.net.head

    def pools_class_token(self):
        net = self.net  # a distilled DeiT averages a second head on the distillation token
        return net.global_pool == "token" and isinstance(net.fc_norm, nn.Identity) and not hasattr(net, "head_dist")

    @contextlib.contextmanager
    def exposed(self, records, with_inputs):
        attns = [block.attn for block in self.blocks]
        fused = [attn.fused_attn for attn in attns]
        handles = []
        try:
            for index, attn in enumerate(attns):
                attn.fused_attn = False
                record = records[index]

                def keep_attention(_m, _i, output, record=record):
                    record.attention = output

                handles.append(attn.attn_drop.register_forward_hook(keep_attention))
                if with_inputs:
                    handles.append(attn.qkv.register_forward_hook(_timm_qkv_hook(attn, record)))
                    handles.append(attn.proj.register_forward_pre_hook(
                        lambda _m, args, record=record: record.tensors.__setitem__("context", args[0])))
            yield
        finally:
            for handle in handles:
                handle.remove()
            for attn, flag in zip(attns, fused):
                attn.fused_attn = flag


def _timm_qkv_hook(attn: nn.Module, record: BlockRecord) -> Callable:
    """Forward hook on timm's ``attn.qkv``: q, k (through the module's q/k norms) and v as ``[B,H,N,d]``."""

    def hook(_module: nn.Module, _inputs: Any, output: torch.Tensor) -> None:
        b, n, _ = output.shape
        q, k, v = output.reshape(b, n, 3, attn.num_heads, attn.head_dim).permute(2, 0, 3, 1, 4).unbind(0)
        record.tensors.update(q=attn.q_norm(q), k=attn.k_norm(k), v=v)

    return hook


class TorchvisionLayout(Layout):
    """torchvision ``VisionTransformer``: ``encoder.layers[b]`` with ``ln_1``, ``self_attention`` (MHA), ``mlp``."""

    def qkv_weight(self, block):
        return block.self_attention.in_proj_weight

    def proj_weight(self, block):
        return block.self_attention.out_proj.weight

    def parts(self, block):
        return {"x_in": (block, "in"), "attn_in": (block.ln_1, "out"), "attn_branch": (block.dropout, "out"),
                "x_mid": (block.ln_2, "in"), "mlp_in": (block.ln_2, "out"), "hidden": (block.mlp[3], "in"),
                "mlp_branch": (block.mlp, "out")}

    def mlp_linears(self, block):
        return block.mlp[0], block.mlp[3]

    def head(self):
        return self.net.heads.head

    def pools_class_token(self):
        return len(self.net.heads) == 1  # torchvision reads the class token; a representation layer adds a Tanh

    @contextlib.contextmanager
    def exposed(self, records, with_inputs):
        attns = [block.self_attention for block in self.blocks]
        try:
            for attn, record in zip(attns, records):
                if not attn.batch_first or attn.in_proj_weight is None:
                    raise ParamError("attention methods need torchvision's batch-first, packed-projection attention")
                attn.forward = types.MethodType(_explicit_attention(record), attn)
            yield
        finally:
            for attn in attns:
                attn.__dict__.pop("forward", None)


def _explicit_attention(record: BlockRecord) -> Callable:
    """An ``nn.MultiheadAttention.forward`` for self-attention that computes, and records, ``A`` on the graph.

    The computation of ``F.multi_head_attention_forward`` (eval mode: no dropout, no mask): packed input
    projection, ``softmax(q k^T / sqrt(d))``, ``A v``, output projection.
    """

    def forward(self: nn.MultiheadAttention, query: torch.Tensor, *_args: Any, **_kwargs: Any):
        b, n, d = query.shape
        heads = self.num_heads
        q, k, v = (part.reshape(b, n, heads, d // heads).transpose(1, 2)
                   for part in F.linear(query, self.in_proj_weight, self.in_proj_bias).chunk(3, dim=-1))
        attention = ((q * (1.0 / math.sqrt(d // heads))) @ k.transpose(-2, -1)).softmax(dim=-1)
        context = (attention @ v).transpose(1, 2).reshape(b, n, d)
        record.attention = attention
        record.tensors.update(q=q, k=k, v=v, context=context)
        return self.out_proj(context), None

    return forward


def find_layout(model: nn.Module) -> Layout | None:
    """The :class:`Layout` of the vision transformer inside ``model`` (e.g. a normalisation wrapper); None if none."""
    timm_vit = loaded_classes(TIMM_VIT, "VisionTransformer")
    tv_vit = loaded_classes(TV_VIT, "VisionTransformer")
    for module in model.modules():
        if isinstance(module, timm_vit):
            grid = tuple(int(n) for n in module.patch_embed.grid_size)
            return TimmLayout(module, list(module.blocks), TokenLayout(int(module.num_prefix_tokens), grid))
        if isinstance(module, tv_vit):
            side = module.image_size // module.patch_size
            return TorchvisionLayout(module, list(module.encoder.layers), TokenLayout(1, (side, side)))
    return None


def require_layout(method_name: str, model: nn.Module) -> Layout:
    """:func:`find_layout`, or a :class:`ParamError` naming the method when ``model`` holds no supported ViT."""
    layout = find_layout(model)
    if layout is None:
        raise ParamError(f"method {method_name!r} needs a timm or torchvision VisionTransformer inside the model")
    if layout.tokens.prefix < 1:
        raise ParamError(f"method {method_name!r} reads the class token's attention row; the model has no class token")
    return layout


def token_layout(model: nn.Module) -> TokenLayout | None:
    """How ``model``'s tokens lie on the patch grid (None for a model holding no vision transformer)."""
    layout = find_layout(model)
    return None if layout is None else layout.tokens


@contextlib.contextmanager
def recorded_blocks(layout: Layout, with_inputs: bool = False) -> Iterator[list[BlockRecord]]:
    """Yield one :class:`BlockRecord` per block, filled by each forward pass of the model inside the block.

    ``with_inputs`` also records q, k, v, the projection input and the residual-stream tensors of
    :meth:`Layout.parts` (what a relevance pass needs). Hooks, timm's fused-attention flags and replaced forwards
    are restored on exit, also when the body raises.
    """
    records = [BlockRecord() for _ in layout.blocks]
    handles = []
    try:
        if with_inputs:
            for block, record in zip(layout.blocks, records):
                for name, (module, where) in layout.parts(block).items():
                    handles.append(_keep(module, where, name, record))
        with layout.exposed(records, with_inputs):
            yield records
    finally:
        for handle in handles:
            handle.remove()


def _keep(module: nn.Module, where: str, name: str, record: BlockRecord) -> Any:
    """A hook storing ``module``'s first input (``where="in"``) or its output under ``record.tensors[name]``."""
    if where == "in":
        return module.register_forward_pre_hook(lambda _m, args: record.tensors.__setitem__(name, args[0]))
    return module.register_forward_hook(lambda _m, _i, out: record.tensors.__setitem__(name, out))
