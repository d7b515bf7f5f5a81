"""Attention-based methods for vision transformers: raw attention, attention rollout, and Chefer et al.'s
gradient-weighted relevance (CVPR 2021) and generic attention explainability (ICCV 2021).

Each reads the class token's row of an ``[N,N]`` token-to-token matrix (one per block, combined across blocks),
keeps its patch columns as a ``gh x gw`` grid map and upsamples that by the recorded ``upsample`` mode; maps are
raw (no min-max: that is display post-processing). Formulas, defaults and the reference code are in
references/transformer-methods.md §1-3; attention is read by :mod:`~salbench.methods.transformer_attention`.
"""

from __future__ import annotations

import abc
from typing import Any

import torch
from torch import nn

from ..params import ParamError, check_choice
from .base import Method, check_number, register_method
from .postprocess import UPSAMPLE_MODES, upsample
from .transformer_attention import BlockRecord, Layout, recorded_blocks, require_layout
from .transformer_lrp import attention_relevances

HEAD_FUSIONS = ("mean", "max", "min")


class AttentionMethod(Method):
    """A vision-transformer method: :meth:`token_rows` gives the class token's ``[B,N]`` row over all key tokens."""

    model_family = "vit"
    defaults = {"upsample": "bilinear"}

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        check_choice("method", self.name, "upsample", self.params["upsample"], UPSAMPLE_MODES)
        if "start_layer" in self.params:
            check_number(self, "start_layer", 0, integer=True)

    @abc.abstractmethod
    def token_rows(self, model: nn.Module, layout: Layout, inputs: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """``[B,N]``: the class token's row of the method's token matrix."""

    def attribute(self, model: nn.Module, inputs: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        layout = require_layout(self.name, model)
        rows = self.token_rows(model, layout, inputs, target)
        grid = layout.tokens.patch_map(rows.detach()).to(torch.float32)
        return upsample(grid, tuple(inputs.shape[-2:]), self.params["upsample"])

    def start(self, layout: Layout) -> int:
        """The first block combined (``start_layer``), checked against the model's depth."""
        start = self.params["start_layer"]
        if start >= len(layout.blocks):
            raise ParamError(f"method {self.name!r}: start_layer {start} >= the model's {len(layout.blocks)} blocks")
        return start


def attention_forward(layout: Layout, model: nn.Module, inputs: torch.Tensor,
                      target: torch.Tensor | None = None, with_inputs: bool = False,
                      ) -> tuple[list[BlockRecord], list[torch.Tensor] | None, torch.Tensor | None]:
    """One forward pass recording every block; with ``target``, also ``dy_target/dA_b`` for every block.

    Returns ``(records, gradients or None, the classifier's input or None)``; the classifier input (the class
    token after the final norm) is recorded with ``with_inputs``. No gradient reaches parameters' ``.grad``.
    """
    head_input: list[torch.Tensor] = []
    handle = layout.head().register_forward_pre_hook(lambda _m, args: head_input.append(args[0])) \
        if with_inputs else None
    try:
        with recorded_blocks(layout, with_inputs) as records:
            if target is None:
                with torch.no_grad():
                    model(inputs)
                return records, None, None
            # a (partly) frozen model needs an input leaf that requires grad to keep the graph alive
            leaf = not all(p.requires_grad for p in model.parameters())
            with torch.enable_grad():
                logits = model(inputs.detach().requires_grad_(leaf))
                score = logits.gather(1, target.view(-1, 1).to(logits.device)).sum()
                grads = torch.autograd.grad(score, [record.attention for record in records])
            return records, list(grads), (head_input[0].detach() if head_input else None)
    finally:
        if handle is not None:
            handle.remove()


def class_row(matrices: list[torch.Tensor]) -> torch.Tensor:
    """Row 0 of ``M_L ... M_2 M_1`` for ``[B,N,N]`` matrices in forward order (later blocks on the left), ``[B,N]``.

    Multiplied from the left as row vector times matrix: ``N^2`` per block instead of the full product's ``N^3``.
    """
    row = matrices[-1][:, :1]
    for matrix in reversed(matrices[:-1]):
        row = row @ matrix
    return row[:, 0]


def plus_identity(matrix: torch.Tensor) -> torch.Tensor:
    """``I + M`` for ``[B,N,N]`` matrices (the residual connection's identity), in place."""
    matrix.diagonal(dim1=-2, dim2=-1).add_(1.0)
    return matrix


def positive_head_mean(gradient: torch.Tensor, relevance: torch.Tensor) -> torch.Tensor:
    """``E_h[(grad * relevance)^+]``: ``[B,H,N,N]`` -> ``[B,N,N]`` (Chefer et al.'s gradient-weighted head average)."""
    return (gradient * relevance).clamp(min=0).mean(dim=1)


def fuse_heads(attention: torch.Tensor, how: str) -> torch.Tensor:
    """``[B,H,N,N]`` -> ``[B,N,N]`` by the mean, max or min over heads."""
    if how == "mean":
        return attention.mean(dim=1)
    return attention.amax(dim=1) if how == "max" else attention.amin(dim=1)


def discard_lowest(fused: torch.Tensor, ratio: float) -> torch.Tensor:
    """Zero the ``floor(ratio * N^2)`` smallest entries of each ``[N,N]`` matrix, except entry (0, 0) (vit-explain)."""
    b, n, _ = fused.shape
    count = int(ratio * n * n)
    if count == 0:
        return fused
    flat = fused.flatten(1).clone()
    lowest = flat.topk(count, dim=1, largest=False).indices
    keep = flat[:, :1].clone()
    flat.scatter_(1, lowest, 0.0)
    flat[:, :1] = keep
    return flat.view(b, n, n)


def rollout_matrix(fused: torch.Tensor) -> torch.Tensor:
    """``0.5 F + 0.5 I``, rows normalised to sum to 1 (Abnar & Zuidema's residual-aware attention)."""
    matrix = plus_identity(fused.clone()) / 2
    return matrix / matrix.sum(dim=-1, keepdim=True)


@register_method("raw_attention")
class RawAttention(AttentionMethod):
    """The last block's attention from the class token to each patch, averaged over heads (a baseline).

    Class-independent. Chefer et al. (CVPR 2021) report it as their ``last_layer_attn`` baseline.
    """

    citation = (
        "Baseline of Chefer, Gur & Wolf. Transformer Interpretability Beyond Attention Visualization. CVPR 2021. "
        "arXiv:2012.09838 (raw attention of the last block, head mean)"
    )

    def token_rows(self, model, layout, inputs, target):
        records, _, _ = attention_forward(layout, model, inputs)
        return records[-1].attention.mean(dim=1)[:, 0]


@register_method("attention_rollout")
class AttentionRollout(AttentionMethod):
    """Attention rollout (Abnar & Zuidema 2020): ``R = A^_L ... A^_s``, ``A^ = rownorm(0.5 F + 0.5 I)``.

    ``F`` fuses the heads (``head_fusion``: the paper's mean; vit-explain's max or min), then its
    ``discard_ratio`` share of smallest entries is zeroed except (0, 0) (vit-explain; 0 = the paper). Rows are
    normalised with the right axis (vit-explain's division broadcasts over the wrong one). Class-independent.
    """

    citation = (
        "Abnar & Zuidema. Quantifying Attention Flow in Transformers. ACL 2020. arXiv:2005.00928"
    )
    #: the paper: mean over heads, nothing discarded, every block (references/transformer-methods.md §1)
    defaults = {"head_fusion": "mean", "discard_ratio": 0.0, "start_layer": 0, "upsample": "bilinear"}

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        check_choice("method", self.name, "head_fusion", self.params["head_fusion"], HEAD_FUSIONS)
        ratio = self.params["discard_ratio"]
        if isinstance(ratio, bool) or not isinstance(ratio, (int, float)) or not 0 <= ratio < 1:
            raise ParamError(f"method {self.name!r}: discard_ratio must be a number in [0, 1), got {ratio!r}")

    def token_rows(self, model, layout, inputs, target):
        records, _, _ = attention_forward(layout, model, inputs)
        start = self.start(layout)
        fused = (discard_lowest(fuse_heads(r.attention, self.params["head_fusion"]), self.params["discard_ratio"])
                 for r in records[start:])
        return class_row([rollout_matrix(f) for f in fused])


@register_method("chefer_generic")
class CheferGeneric(AttentionMethod):
    """Generic attention explainability (Chefer, Gur & Wolf, ICCV 2021), self-attention rules 5-6.

    ``A_b = E_h[(dy_c/dA_b * A_b)^+]``; ``R = I``, then ``R <- R + A_b R`` for each block in forward order,
    i.e. ``(I + A_L) ... (I + A_s)``; map = the class token's row. ``y_c`` is the pre-softmax logit.
    """

    citation = (
        "Chefer, Gur & Wolf. Generic Attention-model Explainability for Interpreting Bi-Modal and "
        "Encoder-Decoder Transformers. ICCV 2021. arXiv:2103.15679"
    )
    #: every block (the authors' ViT notebook)
    defaults = {"start_layer": 0, "upsample": "bilinear"}

    def token_rows(self, model, layout, inputs, target):
        records, grads, _ = attention_forward(layout, model, inputs, target)
        start = self.start(layout)
        weighted = [positive_head_mean(g, r.attention.detach()) for r, g in zip(records[start:], grads[start:])]
        return class_row([plus_identity(w) for w in weighted])


@register_method("chefer_transformer_attribution")
class CheferTransformerAttribution(AttentionMethod):
    """Transformer attribution (Chefer, Gur & Wolf, CVPR 2021): relevance times gradient of attention, rolled out.

    ``A_b = E_h[(dy_c/dA_b * R^(A_b))^+]`` with ``R^(A_b)`` the LRP relevance at the attention operand of ``A V``
    (:func:`~salbench.methods.transformer_lrp.attention_relevances`, the authors' rules, seeded with the one-hot
    target); ``C = (I + A_L) ... (I + A_s)`` with no row normalisation (the authors' line is commented out).
    Needs class-token pooling (the classifier reads the class token after the final norm).
    """

    citation = (
        "Chefer, Gur & Wolf. Transformer Interpretability Beyond Attention Visualization. CVPR 2021. "
        "arXiv:2012.09838"
    )
    #: ``start_layer`` 0: the authors' API and notebooks (their evaluation scripts use 1)
    defaults = {"start_layer": 0, "upsample": "bilinear"}

    def token_rows(self, model, layout, inputs, target):
        if not layout.pools_class_token():
            raise ParamError(f"method {self.name!r} propagates relevance from a classifier that reads the class "
                             f"token alone (class-token pooling, one head); this model's head reads more")
        records, grads, head_input = attention_forward(layout, model, inputs, target, with_inputs=True)
        relevances = attention_relevances(layout, records, head_input, target, layout.head().out_features)
        start = self.start(layout)
        weighted = [positive_head_mean(g, r) for g, r in zip(grads[start:], relevances[start:])]
        return class_row([plus_identity(w) for w in weighted])
