"""AttnLRP's propagation rules in gradient x input form, applied to a vision transformer for one pass.

Achtibat et al., "AttnLRP: Attention-Aware Layer-Wise Relevance Propagation for Transformers", ICML 2024
(arXiv:2402.05602); ``../shared/references/transformer-methods.md`` §4. The relevance of any tensor ``t`` is
``t * dy_c/dt`` under a modified backward pass (the "efficient" form of the authors' ``lxt`` >= 2.0):

* linear layers and convolutions (Eq. 8, epsilon rule): the gradient at the output ``z`` is scaled by
  ``z / (z + eps sign z)`` (:class:`EpsilonRule`); eps = 0 is the plain gradient (the z-rule), as in ``lxt``;
* element-wise non-linearities such as GELU (Eq. 9, identity rule): backward multiplies by ``f(x) / x``
  (:class:`IdentityRule`), so the relevance passes unchanged;
* softmax (Prop. 3.1, Taylor expansion with bias): the plain gradient, which gives
  ``R_in = x * (R_out - s * sum R_out)``;
* the products ``Q K^T`` and ``A V`` (Prop. 3.3, uniform rule): each operand gets half of the product's
  relevance, i.e. the gradient is scaled by 1/4 at q and k (two products deep) and by 1/2 at v;
* layer norm (Prop. 3.4, identity rule on the normalisation): the standard deviation is treated as a constant.

``attention="cp"`` keeps everything but the attention: q and k carry no gradient (CP-LRP, Ali et al., ICML
2022), the variant ``lxt`` 2.1 ships for torchvision ViTs. Attention is reached in timm's ``Attention`` (a hook on
its ``qkv`` output, so fused and explicit attention give the same relevance) and in ``nn.MultiheadAttention``
(torchvision's ViT), whose self-attention is computed explicitly here so that its in- and out-projections, which
torch applies as functions that no module hook reaches, get the epsilon rule too. Every change is
per module instance and undone in a ``finally``: unlike ``lxt``, nothing is patched on a class.
"""

from __future__ import annotations

import contextlib
import types
from typing import Any, Callable, Iterator

import torch
import torch.nn.functional as F
from torch import nn

from .lazy import loaded_classes

#: where timm keeps its attention module and its GELU variants (matched only when loaded, see ``lazy``)
TIMM_ATTENTION, TIMM_ACTIVATIONS = "timm.layers.attention", "timm.layers.activations"
#: gradient factors (query, key, value) per ``attention`` setting: AttnLRP's uniform rule, or CP-LRP's detached q, k
ATTENTION_FACTORS = {"attnlrp": (0.25, 0.25, 0.5), "cp": (0.0, 0.0, 1.0)}
#: element-wise non-linearities that get the identity rule (all with f(0) = 0, so f(x) / x stays finite)
ELEMENTWISE = (nn.GELU, nn.ReLU, nn.SiLU, nn.Tanh, nn.ELU, nn.LeakyReLU)
#: the identity rule's ``f(x) / x`` divides by this where ``x`` is 0 (``lxt`` adds 1e-10 to every ``x``)
IDENTITY_STABILIZER = 1e-10


class EpsilonRule(torch.autograd.Function):
    """Identity forward; backward scales the gradient at a layer's output ``z`` by ``z / (z + eps sign z)``,
    computed as ``|z| / (|z| + eps)`` (the same number, in fewer passes over ``z``).

    With ``R_out = z * g`` this is the epsilon rule ``R_in = x W^T (R_out / (z + eps sign z))`` (Eq. 8).
    """

    @staticmethod
    def forward(ctx: Any, z: torch.Tensor, epsilon: float) -> torch.Tensor:
        ctx.save_for_backward(z)
        ctx.epsilon = epsilon
        return z.view_as(z)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        (z,) = ctx.saved_tensors
        magnitude = z.abs()
        return grad * magnitude.div_(magnitude + ctx.epsilon), None


class IdentityRule(torch.autograd.Function):
    """``f(x)`` forward; backward multiplies by ``f(x) / x``, so ``x * g_in = f(x) * g_out`` (Eq. 9)."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, fn: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor:
        y = fn(x)
        ctx.save_for_backward(y / torch.where(x == 0, IDENTITY_STABILIZER, x))
        return y

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        (ratio,) = ctx.saved_tensors
        return grad * ratio, None


class GradientScale(torch.autograd.Function):
    """Identity forward; backward multiplies the gradient by ``factor`` (a number or a broadcastable tensor)."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, factor: float | torch.Tensor) -> torch.Tensor:
        ctx.factor = factor
        return x.view_as(x)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        return grad * ctx.factor, None


def layer_norm_identity(module: nn.LayerNorm, x: torch.Tensor) -> torch.Tensor:
    """``module``'s layer norm with the standard deviation out of the graph (Prop. 3.4): linear in ``x``."""
    dims = tuple(range(-len(module.normalized_shape), 0))
    centred = x - x.mean(dim=dims, keepdim=True)
    std = (centred.detach().pow(2).mean(dim=dims, keepdim=True) + module.eps).sqrt()
    y = centred / std
    if module.weight is not None:
        y = y * module.weight
    return y + module.bias if module.bias is not None else y


def _identity_forward(module: nn.Module) -> Callable[[torch.Tensor], torch.Tensor]:
    original = type(module).forward.__get__(module)
    return lambda x: IdentityRule.apply(x, original)


def _split_qkv(qkv: torch.Tensor, factors: tuple[float, float, float]) -> torch.Tensor:
    """A packed ``[..., q | k | v]`` projection whose thirds' gradients are scaled by ``factors``."""
    width = qkv.shape[-1] // 3
    if factors[0] == factors[1] == 0.0:  # CP-LRP: q and k detached (no backward through the softmax at all)
        qkv = torch.cat([qkv[..., : 2 * width].detach(), qkv[..., 2 * width:]], dim=-1)
        factors = (1.0, 1.0, factors[2])
    if factors == (1.0, 1.0, 1.0):
        return qkv
    return GradientScale.apply(qkv, qkv.new_tensor(factors).repeat_interleave(width))


def _epsilon(z: torch.Tensor, epsilon: float) -> torch.Tensor:
    return EpsilonRule.apply(z, epsilon) if epsilon > 0 else z


def _mha_forward(module: nn.MultiheadAttention, factors: tuple[float, float, float],
                 epsilon: float) -> Callable[..., Any]:
    """Self-attention as torchvision's encoder block calls it (``attn(x, x, x, need_weights=False)``, batch
    first), computed explicitly so the projections get the epsilon rule and q, k, v their factors, like timm's."""

    def forward(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, *args: Any, **kwargs: Any) -> Any:
        plain = not args and kwargs.get("need_weights", True) is False and set(kwargs) <= {"need_weights"}
        if not (plain and query is key is value and module.batch_first and module._qkv_same_embed_dim
                and module.bias_k is None):
            raise ValueError("attnlrp: nn.MultiheadAttention is supported as batch-first self-attention called "
                             "attn(x, x, x, need_weights=False), torchvision's ViT encoder block's call; got another")
        batch, tokens, width = query.shape
        weight, bias = module.in_proj_weight, module.in_proj_bias
        if factors[0] == factors[1] == 0.0:  # CP-LRP (v keeps its gradient): q and k off the graph, v projected
            with torch.no_grad():            # alone, a third of the packed projection's backward matmul
                q, k = F.linear(query, weight[: 2 * width], None if bias is None else bias[: 2 * width]).chunk(2, -1)
            v = _epsilon(F.linear(query, weight[2 * width:], None if bias is None else bias[2 * width:]), epsilon)
        else:
            q, k, v = _split_qkv(_epsilon(F.linear(query, weight, bias), epsilon), factors).chunk(3, -1)
        q, k, v = (t.reshape(batch, tokens, module.num_heads, module.head_dim).transpose(1, 2) for t in (q, k, v))
        out = F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(batch, tokens, width)
        return _epsilon(F.linear(out, module.out_proj.weight, module.out_proj.bias), epsilon), None

    return forward


def _qkv_hook(factors: tuple[float, float, float]) -> Callable[..., torch.Tensor]:
    """Forward hook on timm's fused ``qkv`` projection: its q, k and v thirds get ``factors``."""

    def hook(module: nn.Module, args: tuple, out: torch.Tensor) -> torch.Tensor:
        return _split_qkv(out, factors)

    return hook


def _epsilon_hook(epsilon: float) -> Callable[..., torch.Tensor]:
    def hook(module: nn.Module, args: tuple, out: torch.Tensor) -> torch.Tensor:
        return EpsilonRule.apply(out, epsilon)

    return hook


def check_transformer(net: nn.Module) -> None:
    """Raise a :class:`ValueError` unless ``net`` has an attention the rules reach and no other attention (a
    module named ``*Attention*`` holding none that they reach, e.g. timm's ``AttentionPoolLatent``)."""
    kinds = (nn.MultiheadAttention, *loaded_classes(TIMM_ATTENTION, "Attention"))
    supported = {module for module in net.modules() if isinstance(module, kinds)}
    if not supported:
        raise ValueError(f"attnlrp explains vision transformers: {type(net).__name__} has no timm Attention or "
                         "torch.nn.MultiheadAttention")
    for name, module in net.named_modules():
        if module in supported and getattr(module, "gate", None) is not None:
            raise ValueError(f"attnlrp: gated attention at {name!r} is not supported (no rule for its gate)")
        if "Attention" in type(module).__name__ and not any(m in supported for m in module.modules()):
            raise ValueError(f"attnlrp: no AttnLRP rule for {type(module).__name__} at {name!r}; the rules reach "
                             "timm's Attention and torch.nn.MultiheadAttention")


@contextlib.contextmanager
def attnlrp_rules(net: nn.Module, epsilon: float, attention: str = "attnlrp") -> Iterator[nn.Module]:
    """Within the block, ``net``'s backward pass computes AttnLRP (``attention="attnlrp"``) or its CP-LRP variant
    (``"cp"``) in gradient x input form; ``epsilon`` is the linear layers' stabiliser (0: plain gradient).

    Instance-level ``forward`` overrides (layer norms, non-linearities, multi-head attention) and forward hooks
    (linear layers, timm's ``qkv``) are removed in a ``finally``, also when the pass raises.
    """
    check_transformer(net)
    factors = ATTENTION_FACTORS[attention]
    elementwise = (*ELEMENTWISE, *loaded_classes(TIMM_ACTIVATIONS, "GELU", "GELUTanh", "QuickGELU"))
    timm_attention = loaded_classes(TIMM_ATTENTION, "Attention")
    overridden: list[tuple[nn.Module, Any]] = []
    handles = []
    try:
        for module in net.modules():
            forward = None
            if isinstance(module, nn.LayerNorm):
                forward = types.MethodType(layer_norm_identity, module)
            elif isinstance(module, elementwise):
                forward = _identity_forward(module)
            elif isinstance(module, nn.MultiheadAttention):
                forward = _mha_forward(module, factors, epsilon)
            elif isinstance(module, timm_attention):
                handles.append(module.qkv.register_forward_hook(_qkv_hook(factors)))
            if forward is not None:
                overridden.append((module, module.__dict__.get("forward")))
                module.forward = forward
            if epsilon > 0 and isinstance(module, (nn.Linear, nn.Conv2d)):
                handles.append(module.register_forward_hook(_epsilon_hook(epsilon)))
        yield net
    finally:
        for handle in handles:
            handle.remove()
        for module, previous in reversed(overridden):
            if previous is None:
                del module.forward
            else:
                module.forward = previous
