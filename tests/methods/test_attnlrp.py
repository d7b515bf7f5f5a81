"""AttnLRP (Achtibat et al., ICML 2024): its rules by hand, conservation, batching, timm = torchvision, lxt parity."""

from __future__ import annotations

import math

import pytest
import torch
from timm.models.vision_transformer import VisionTransformer as TimmViT
from torch import nn
from torchvision.models import VisionTransformer as TorchvisionViT

from salbench.methods import create_method
from salbench.methods.attnlrp import attnlrp_relevance
from salbench.methods.attnlrp_rules import attnlrp_rules
from salbench.models.base import ModelSpec, NormalizedClassifier
from salbench.params import ParamError

from .helpers import SPEC as CNN_SPEC
from .helpers import tiny_model
from .lxt_reference import PATCHED, lxt_available, lxt_patched, lxt_relevance

SIZE, PATCH, WIDTH, DEPTH, HEADS, CLASSES = 32, 8, 32, 2, 4, 5
VIT_SPEC = ModelSpec(arch="tiny_test_vit", input_size=SIZE, mean=(0.5,) * 3, std=(0.25,) * 3, target_layer="net",
                     family="vit", lacks={"propagation_rules": "zennit has no attention rules"})
TV_CONFIG = dict(image_size=SIZE, patch_size=PATCH, num_layers=DEPTH, num_heads=HEADS, hidden_dim=WIDTH,
                 mlp_dim=2 * WIDTH, num_classes=CLASSES)


def torchvision_vit() -> TorchvisionViT:
    """A tiny seeded torchvision ViT; its zero-initialised head and class token are drawn (every gradient would be
    0 otherwise, ``transformer-methods.md`` §0)."""
    torch.manual_seed(0)
    net = TorchvisionViT(**TV_CONFIG).eval()
    with torch.no_grad():
        net.heads.head.weight.normal_(std=0.5)
        net.heads.head.bias.normal_(std=0.1)
        net.class_token.normal_()
    return net


def timm_twin(tv: TorchvisionViT, fused: bool = False) -> TimmViT:
    """The timm ViT computing the same function as ``tv`` (its weights under timm's names)."""
    net = TimmViT(img_size=SIZE, patch_size=PATCH, num_classes=CLASSES, embed_dim=WIDTH, depth=DEPTH,
                  num_heads=HEADS, mlp_ratio=2.0, qkv_bias=True, global_pool="token").eval()
    state = {"cls_token": tv.class_token, "pos_embed": tv.encoder.pos_embedding,
             "patch_embed.proj.weight": tv.conv_proj.weight, "patch_embed.proj.bias": tv.conv_proj.bias,
             "norm.weight": tv.encoder.ln.weight, "norm.bias": tv.encoder.ln.bias,
             "head.weight": tv.heads.head.weight, "head.bias": tv.heads.head.bias}
    for b, layer in enumerate(tv.encoder.layers):
        attn = layer.self_attention
        pairs = {"norm1": layer.ln_1, "norm2": layer.ln_2, "attn.proj": attn.out_proj, "mlp.fc1": layer.mlp[0],
                 "mlp.fc2": layer.mlp[3]}
        for name, module in pairs.items():
            state |= {f"blocks.{b}.{name}.weight": module.weight, f"blocks.{b}.{name}.bias": module.bias}
        state |= {f"blocks.{b}.attn.qkv.weight": attn.in_proj_weight, f"blocks.{b}.attn.qkv.bias": attn.in_proj_bias}
    net.load_state_dict({k: v.detach().clone() for k, v in state.items()})
    for module in net.modules():
        if hasattr(module, "fused_attn"):
            module.fused_attn = fused
    return net


@pytest.fixture
def batch() -> tuple[torch.Tensor, torch.Tensor]:
    return torch.randn(3, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(1)), torch.tensor([0, 3, 1])


# ---- the rules by hand -----------------------------------------------------------------------------------------


def test_softmax_rule_is_the_taylor_rule_with_bias():
    """Prop. 3.1: scores (0, ln 3) give s = (1/4, 3/4); output relevance (1, 1) becomes x * (R - s sum R) =
    (0, ln 3 * (1 - 3/2)); the bias term keeps the rest of the 2 units."""
    scores = torch.tensor([0.0, math.log(3.0)], requires_grad=True)
    s = torch.softmax(scores, 0)
    relevance_out = torch.ones(2)
    (grad,) = torch.autograd.grad(s, scores, relevance_out / s.detach())  # R_out = s * g
    assert torch.allclose(scores.detach() * grad, torch.tensor([0.0, -0.5 * math.log(3.0)]), atol=1e-6)


def _explicit_attnlrp(x: torch.Tensor, wq: float, wk: float, wv: float) -> torch.Tensor:
    """Input relevance of one-head, width-1 self-attention ``out = softmax(q k^T) v`` (q, k, v = w x, projection
    1, no biases) with every output's relevance equal to its value, by the paper's rules written out term by term:
    z-rule on A V then half to A and half to V (Prop. 3.3), the softmax's Taylor rule (Prop. 3.1), z-rule on
    q k^T then half to q and half to k."""
    q, k, v = wq * x, wk * x, wv * x
    attention = torch.softmax(q[:, None] * k[None, :], dim=1)
    terms = attention * v[None, :]  # out_i = sum_j terms_ij, R_out_i = out_i: terms_ij / out_i * R_out_i = terms_ij
    relevance_a, relevance_v = terms / 2, terms.sum(0) / 2
    scores = q[:, None] * k[None, :]
    relevance_scores = scores * (relevance_a - attention * relevance_a.sum(1, keepdim=True))
    relevance_q, relevance_k = relevance_scores.sum(1) / 2, relevance_scores.sum(0) / 2
    return relevance_q + relevance_k + relevance_v  # q, k, v are x times a number: their relevance is x's


def _timm_attention(wq: float, wk: float, wv: float) -> nn.Module:
    from timm.layers.attention import Attention

    attn = Attention(dim=1, num_heads=1, qkv_bias=False).eval()
    with torch.no_grad():
        attn.qkv.weight.copy_(torch.tensor([[wq], [wk], [wv]]))
        attn.proj.weight.fill_(1.0)
        attn.proj.bias.zero_()
    return attn


class _TorchvisionBlock(nn.Module):
    """``nn.MultiheadAttention`` called as torchvision's encoder block calls it."""

    def __init__(self, wq: float, wk: float, wv: float) -> None:
        super().__init__()
        self.attn = nn.MultiheadAttention(1, 1, bias=False, batch_first=True).eval()
        with torch.no_grad():
            self.attn.in_proj_weight.copy_(torch.tensor([[wq], [wk], [wv]]))
            self.attn.out_proj.weight.fill_(1.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.attn(x, x, x, need_weights=False)[0]


@pytest.mark.parametrize("build", [_timm_attention, _TorchvisionBlock], ids=["timm", "torchvision"])
def test_attention_products_split_relevance_uniformly(build):
    x = torch.tensor([1.0, 2.0, -0.5])
    module = build(0.7, 1.3, 2.0)
    with attnlrp_rules(module, epsilon=0.0), torch.enable_grad():
        leaf = x[None, :, None].clone().requires_grad_()
        out = module(leaf)
        (grad,) = torch.autograd.grad(out, leaf, torch.ones_like(out))  # R_out = out
    expected = _explicit_attnlrp(x, 0.7, 1.3, 2.0)
    assert torch.allclose((leaf * grad).flatten(), expected, atol=1e-6)
    with torch.enable_grad():  # plain gradient x input (q, k and v each take the full relevance) differs
        out = module(leaf)
        (plain,) = torch.autograd.grad(out, leaf, torch.ones_like(out))
    assert not torch.allclose((leaf * plain).flatten(), expected, atol=1e-3)


def test_epsilon_rule_absorbs_into_the_stabiliser():
    """Eq. 8 on one linear layer: ``R_in = x w R_out / (z + eps sign z)``."""
    layer = nn.Linear(2, 1, bias=False)
    with torch.no_grad():
        layer.weight.copy_(torch.tensor([[1.0, -2.0]]))
    wrapper = nn.Sequential(layer, nn.MultiheadAttention(2, 1))  # a transformer for the rules' check; unused
    x = torch.tensor([[0.3, 0.1]], requires_grad=True)
    with attnlrp_rules(wrapper, epsilon=0.5), torch.enable_grad():
        z = layer(x)
        (grad,) = torch.autograd.grad(z, x, torch.ones_like(z))
    relevance_out = z.detach()  # seed gradient 1
    expected = x.detach() * layer.weight.detach() * relevance_out / (z.detach() + 0.5 * torch.sign(z.detach()))
    assert torch.allclose(x.detach() * grad, expected, atol=1e-7)


# ---- whole transformers ------------------------------------------------------------------------------------------


def _bias_free(net: nn.Module) -> nn.Module:
    with torch.no_grad():
        for name, parameter in net.named_parameters():
            if name.endswith("bias"):
                parameter.zero_()
    return net


def _relevance_with_embeddings(net: TimmViT, x: torch.Tensor, target: torch.Tensor, attention: str,
                               hooked: list[nn.Module] = ()) -> tuple[torch.Tensor, torch.Tensor, list]:
    """(pixel relevance per image, class-token + position relevance of the batch, [(output, gradient)] of each
    ``hooked`` module) under the rules, with the target logits seeded with 1."""
    outputs: list[torch.Tensor] = []
    handles = [m.register_forward_hook(lambda m, a, out: outputs.append(out)) for m in hooked]
    try:
        with attnlrp_rules(net, 0.0, attention), torch.enable_grad():
            leaf = x.clone().requires_grad_()
            logit = net(leaf).gather(1, target[:, None]).sum()
            grads = torch.autograd.grad(logit, [leaf, net.cls_token, net.pos_embed, *outputs])
    finally:
        for handle in handles:
            handle.remove()
    tokens = (net.cls_token * grads[1]).sum() + (net.pos_embed * grads[2]).sum()
    return (leaf * grads[0]).sum((1, 2, 3)), tokens.detach(), [(o.detach(), g) for o, g in zip(outputs, grads[3:])]


def test_cp_variant_conserves_the_logit_without_biases(batch):
    """Bias-free and with eps = 0, CP-LRP's relevance is conserved: pixels + class token + position embeddings =
    the target logit (the embeddings are parameters, so the pixels alone do not sum to it)."""
    x, target = batch
    net = _bias_free(timm_twin(torchvision_vit()))
    logits = net(x).gather(1, target[:, None]).sum()
    pixels, tokens, _ = _relevance_with_embeddings(net, x, target, "cp")
    assert torch.allclose(pixels.sum() + tokens, logits, rtol=1e-4)


def test_attnlrp_conserves_the_logit_but_for_the_softmax_bias_term(batch):
    """Bias-free AttnLRP: pixels + embeddings = logit - what each softmax row's bias term keeps (Prop. 3.1).

    A row's scores are log A up to a constant that cancels, so its leak is sum_j R_j - sum_j log A_j (R_j - A_j
    sum_l R_l), with R the relevance of the attention matrix A: half of A * dy/dA (the uniform rule's half for A
    is applied at q and k, whose gradient is scaled by 1/4, so A's gradient is not halved)."""
    x, target = batch
    net = _bias_free(timm_twin(torchvision_vit()))
    logit = net(x).gather(1, target[:, None]).sum()
    pixels, tokens, attentions = _relevance_with_embeddings(
        net, x, target, "attnlrp", hooked=[block.attn.attn_drop for block in net.blocks])
    leak = torch.tensor(0.0)
    for a, grad in attentions:
        r = a * grad / 2
        leak += (r.sum(-1) - (a.log() * (r - a * r.sum(-1, keepdim=True))).sum(-1)).sum()
    assert abs(float(leak)) > 1e-3 * abs(float(logit.detach()))  # the softmax rule is not conservative here
    assert torch.allclose(pixels.sum() + tokens, logit.detach() - leak, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("attention", ["attnlrp", "cp"])
def test_timm_and_torchvision_layouts_give_the_same_relevance(batch, attention):
    """The same weights as a timm ViT (hook on ``qkv``; fused and explicit attention alike) and as torchvision's
    (``nn.MultiheadAttention``, computed explicitly) give the same map, with an epsilon that reaches every
    projection."""
    x, target = batch
    tv = torchvision_vit()
    reference = attnlrp_relevance(tv, x, target, 1e-6, attention)
    for fused in (False, True):
        net = timm_twin(tv, fused)
        assert torch.allclose(net(x), tv(x), atol=1e-5)
        assert torch.allclose(attnlrp_relevance(net, x, target, 1e-6, attention), reference, atol=1e-6)


def test_batch_equals_per_image(batch):
    x, target = batch
    net = timm_twin(torchvision_vit())
    model, pixels = NormalizedClassifier(net, VIT_SPEC), x.sigmoid()
    method = create_method("attnlrp")
    together = method.attribute(model, pixels, target)
    alone = torch.cat([method.attribute(model, pixels[i: i + 1], target[i: i + 1]) for i in range(len(x))])
    assert together.shape == (3, SIZE, SIZE) and together.dtype == torch.float32
    # the relevance at the network's own (normalised) input, summed over channels
    assert torch.allclose(together, attnlrp_relevance(net, (pixels - 0.5) / 0.25, target, 0.0).sum(1))
    assert torch.allclose(together, alone, atol=1e-6)
    assert not torch.allclose(together[0], together[1])


@pytest.mark.parametrize("frozen", [False, True], ids=["trainable", "frozen"])
def test_rules_are_undone_after_the_pass(batch, frozen):
    x, target = batch
    tv = torchvision_vit()
    for net in (tv, timm_twin(tv)):
        net.requires_grad_(not frozen)
        before = net(x)
        attnlrp_relevance(net, x, target, 1e-6)
        assert not any("forward" in vars(m) for m in net.modules())
        assert not any(m._forward_hooks for m in net.modules())
        assert torch.equal(net(x), before)
        assert all(p.grad is None and p.requires_grad is not frozen for p in net.parameters())


# ---- the method's contract ---------------------------------------------------------------------------------------


def test_defaults_citation_and_family():
    method = create_method("attnlrp")
    assert method.params == {"epsilon": 0.0, "attention": "attnlrp", "channel_reduction": "sum"}
    assert "AttnLRP" in method.citation and "ICML 2024" in method.citation
    assert "needs a vit model" in method.skip_reason(CNN_SPEC)
    assert method.skip_reason(VIT_SPEC) is None  # zennit's propagation rules are not needed


def test_bad_settings_and_models_are_refused():
    with pytest.raises(ParamError, match="attention='full' is not one of attnlrp, cp"):
        create_method("attnlrp", attention="full")
    with pytest.raises(ParamError, match="epsilon"):
        create_method("attnlrp", epsilon=-1.0)
    cnn = tiny_model()
    with pytest.raises(ValueError, match="has no timm Attention or torch.nn.MultiheadAttention"):
        create_method("attnlrp").attribute(cnn, torch.rand(1, 3, 16, 16), torch.tensor([0]))


def test_salbench_never_imports_lxt():
    """``lxt`` patches ``torch.nn`` for the whole process when used: no salbench module may import it."""
    import ast
    from pathlib import Path

    import salbench

    for path in Path(salbench.__file__).parent.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            assert not any(name.split(".")[0] == "lxt" for name in names), path


# ---- parity with the authors' lxt ---------------------------------------------------------------------------------


@pytest.mark.skipif(not lxt_available(), reason="lxt is not installed: it is no dependency (it pulls bitsandbytes "
                    "and more, and lxt 2.1 does not import beside transformers 5); `pip install --no-deps lxt==2.1` "
                    "runs this test (tests/methods/lxt_reference.py)")
@pytest.mark.parametrize("attention", ["cp", "attnlrp"])
def test_parity_with_lxt(batch, attention):
    """``lxt`` 2.1 on torchvision's ViT: its shipped CP-LRP patch map, and its AttnLRP attention wrapper, against
    the method with its defaults (eps = 0, as ``lxt``'s plain gradient on linear layers) and with eps = 1e-6;
    every class ``lxt`` patches is restored."""
    x, target = batch
    net = torchvision_vit()
    ours = create_method("attnlrp", attention=attention).attribute_channels(net, x, target)
    originals = {(cls, attr): vars(cls).get(attr) for cls, attr in PATCHED}
    with lxt_patched(attention):
        assert nn.LayerNorm.forward is not originals[(nn.LayerNorm, "forward")]
        theirs = lxt_relevance(net, x, target)
    assert {(cls, attr): vars(cls).get(attr) for cls, attr in PATCHED} == originals
    assert torch.allclose(ours, theirs, atol=1e-6)
    assert torch.allclose(attnlrp_relevance(net, x, target, 1e-6, attention), theirs, atol=1e-4)
