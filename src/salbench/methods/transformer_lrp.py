"""The relevance pass of Chefer, Gur & Wolf (CVPR 2021) through a vision transformer, down to each attention map.

Rules of the authors' ``modules/layers_ours.py`` and ``baselines/ViT/ViT_LRP.py`` (hila-chefer/Transformer-
Explainability; references/transformer-methods.md §2), written here on recorded tensors (no autograd):
linear layers alpha=1, beta=0 with biases ignored; GELU, softmax, layer norms, dropout and LayerScale pass
relevance unchanged; two-operand products (``Q K^T``, ``A V``, the class-token selection, the residual fork) the
z-rule, each operand of a matmul then halved; a residual add rescales its two shares to
``|sum a| / (|sum a| + |sum b|)`` of the incoming total. Division is the authors' ``safe_divide``. The authors
sum a residual add's shares over the whole batch (their code explains one image at a time); here the sums are per
item, so a batch equals its items (docs/fidelity.md).
"""

from __future__ import annotations

import torch

from .transformer_attention import BlockRecord, Layout


def safe_divide(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """The authors' ``safe_divide``: ``a / (b + 1e-9)`` (``1e-9`` where that is 0), and 0 where ``b == 0``.

    Their ``b.clamp(min=1e-9) + b.clamp(max=1e-9)`` is ``b + 1e-9`` for every ``b`` (the same float operation).
    """
    return divide_into(a, b.clone())


def divide_into(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """:func:`safe_divide` computed in ``b``'s memory (``b`` is consumed): no new tensor per rule."""
    zero = b == 0
    b.add_(1e-9)
    b.masked_fill_(b == 0, 1e-9)
    return torch.div(a, b, out=b).masked_fill_(zero, 0.0)


@torch.no_grad()
def linear_rule(x: torch.Tensor, weight: torch.Tensor, relevance: torch.Tensor) -> torch.Tensor:
    """Alpha=1, beta=0 through ``x @ weight.T`` (bias ignored): positive contributions ``x+ w+`` and ``x- w-``.

    ``R_x = x+ (S w+) + x- (S w-)`` with ``S = R / z``, written as ``x * where(x > 0, S w+, S w-)``.
    """
    pw, nw = weight.clamp(min=0), weight.clamp(max=0)
    px = x.clamp(min=0)
    nx = x - px
    z = px @ pw.T
    z += nx @ nw.T
    scale = divide_into(relevance, z)
    return x * torch.where(x > 0, scale @ pw, scale @ nw)


@torch.no_grad()
def matmul_rule(a: torch.Tensor, b: torch.Tensor, relevance: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Z-rule through ``a @ b`` (no epsilon): each operand gets itself times the gradient of ``<Z, R/Z>``."""
    scale = divide_into(relevance, a @ b)
    return a * (scale @ b.transpose(-2, -1)), b * (a.transpose(-2, -1) @ scale)


@torch.no_grad()
def add_rule(a: torch.Tensor, b: torch.Tensor, relevance: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Z-rule through ``a + b``, each share then rescaled to its |total|'s fraction of the item's relevance."""
    scale = divide_into(relevance, a + b)
    ra, rb = a * scale, b * scale
    dims = tuple(range(1, relevance.dim()))
    total = relevance.sum(dim=dims, keepdim=True)
    sa, sb = ra.sum(dim=dims, keepdim=True), rb.sum(dim=dims, keepdim=True)
    both = sa.abs() + sb.abs()
    return (ra * safe_divide(safe_divide(sa.abs(), both) * total, sa),
            rb * safe_divide(safe_divide(sb.abs(), both) * total, sb))


@torch.no_grad()
def fork_rule(x: torch.Tensor, *relevances: torch.Tensor) -> torch.Tensor:
    """Z-rule through a tensor used twice (the residual fork): ``x * sum_i R_i / x``."""
    return x * sum(safe_divide(r, x) for r in relevances)


def attention_rule(layout: Layout, block: torch.nn.Module, record: BlockRecord,
                   relevance: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(relevance of the attention input, relevance R^(A) of the attention map)`` from the branch's relevance."""
    t = record.tensors
    q, k, v, attention = t["q"], t["k"], t["v"], record.attention
    b, heads, n, d = v.shape
    context = linear_rule(t["context"], layout.proj_weight(block), relevance)
    r_attention, r_v = matmul_rule(attention, v, context.reshape(b, n, heads, d).transpose(1, 2))
    r_attention, r_v = r_attention / 2, r_v / 2
    r_q, r_kt = matmul_rule(q, k.transpose(-2, -1), r_attention)  # softmax passes relevance unchanged
    r_qkv = torch.stack([r_q / 2, r_kt.transpose(-2, -1) / 2, r_v])  # [3,B,H,N,d] -> [B,N,(3 H d)]
    r_qkv = r_qkv.permute(1, 3, 0, 2, 4).reshape(b, n, 3 * heads * d)
    return linear_rule(t["attn_in"], layout.qkv_weight(block), r_qkv), r_attention


def block_rule(layout: Layout, block: torch.nn.Module, record: BlockRecord,
               relevance: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(relevance of the block input, R^(A))``: back through the MLP add, the MLP, the attention add."""
    t = record.tensors
    fc1, fc2 = layout.mlp_linears(block)
    r_stream, r_mlp = add_rule(t["x_mid"], t["mlp_branch"], relevance)
    r_mlp = linear_rule(t["mlp_in"], fc1.weight, linear_rule(t["hidden"], fc2.weight, r_mlp))
    relevance = fork_rule(t["x_mid"], r_stream, r_mlp)
    r_stream, r_attn = add_rule(t["x_in"], t["attn_branch"], relevance)
    r_attn, r_attention = attention_rule(layout, block, record, r_attn)
    return fork_rule(t["x_in"], r_stream, r_attn), r_attention


def attention_relevances(layout: Layout, records: list[BlockRecord], head_input: torch.Tensor,
                         target: torch.Tensor, num_classes: int) -> list[torch.Tensor]:
    """``R^(A_b)`` (``[B,H,N,N]``) of every block for the one-hot seed at ``target`` (the authors' seed)."""
    with torch.no_grad():
        seed = torch.zeros(head_input.shape[0], num_classes, dtype=head_input.dtype, device=head_input.device)
        seed.scatter_(1, target.view(-1, 1), 1.0)
        pooled = linear_rule(head_input, layout.head().weight, seed)
        n, d = records[-1].tensors["x_in"].shape[1:]
        relevance = head_input.new_zeros(head_input.shape[0], n, d)
        relevance[:, 0] = head_input * safe_divide(pooled, head_input)  # class-token selection; final norm: identity
        found = []
        for block, record in zip(reversed(layout.blocks), reversed(records)):
            relevance, r_attention = block_rule(layout, block, record, relevance)
            found.append(r_attention)
    return found[::-1]
