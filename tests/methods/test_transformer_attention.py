"""Attention access for the transformer methods: recorded maps, restored models, layouts, errors and the family."""

from __future__ import annotations

import pytest
import torch

from salbench.methods import create_method
from salbench.methods.transformer_attention import find_layout, recorded_blocks
from salbench.params import ParamError

from .helpers import SPEC as CNN_SPEC
from .helpers import tiny_model
from .test_registry import assert_no_hooks
from .threads import one_thread  # noqa: F401  (fixture)
from .transformer_models import pixels, tiny_tv_vit, tiny_vit

pytestmark = pytest.mark.usefixtures("one_thread")
TRANSFORMER_METHODS = ("raw_attention", "attention_rollout", "chefer_generic", "chefer_transformer_attribution")


def test_timm_attention_is_recorded_under_fused_attention_and_the_flag_restored():
    """A model built with timm's fused attention: A is recorded, logits are those of the fused path, the flags
    and hooks are back afterwards."""
    model, x = tiny_vit(fused=True), pixels(2)
    with torch.no_grad():
        fused = model(x)
    layout = find_layout(model)
    with recorded_blocks(layout, with_inputs=True) as records, torch.no_grad():
        logits = model(x)
    torch.testing.assert_close(logits, fused, rtol=0, atol=1e-5)
    assert all(block.attn.fused_attn for block in layout.blocks)
    assert_no_hooks(model)
    for record, block in zip(records, layout.blocks):
        q, k = record.tensors["q"], record.tensors["k"]
        expected = (q * block.attn.scale @ k.transpose(-2, -1)).softmax(-1)
        torch.testing.assert_close(record.attention, expected)
        torch.testing.assert_close(record.attention.sum(-1), torch.ones(2, 2, 17))


def test_torchvision_attention_is_replaced_per_call_with_the_same_outputs():
    model, x = tiny_tv_vit(), pixels(2)
    with torch.no_grad():
        original = model(x)
    layout = find_layout(model)
    with pytest.raises(RuntimeError, match="inside"):
        with recorded_blocks(layout, with_inputs=True) as records:
            with torch.no_grad():
                replayed = model(x)
            raise RuntimeError("inside")
    torch.testing.assert_close(replayed, original, rtol=0, atol=1e-5)
    assert all("forward" not in vars(block.self_attention) for block in layout.blocks)
    assert_no_hooks(model)
    assert records[0].attention.shape == (2, 2, 17, 17) and records[0].tensors["context"].shape == (2, 17, 32)
    with torch.no_grad():
        assert torch.equal(model(x), original)


def test_the_weights_torchvision_returns_equal_the_recorded_ones():
    model, x = tiny_tv_vit(), pixels(2)
    mha = model.net.encoder.layers[0].self_attention
    seen = []
    pre = mha.register_forward_pre_hook(lambda m, a, k: (a, {**k, "need_weights": True, "average_attn_weights": False}),
                                        with_kwargs=True)
    post = mha.register_forward_hook(lambda m, i, out: seen.append(out[1]))
    with torch.no_grad():
        model(x)
    pre.remove(), post.remove()
    with recorded_blocks(find_layout(model)) as records, torch.no_grad():
        model(x)
    torch.testing.assert_close(records[0].attention, seen[0], rtol=0, atol=1e-6)


@pytest.mark.parametrize("name", TRANSFORMER_METHODS)
def test_transformer_methods_need_a_vit(name):
    method = create_method(name)
    assert method.model_family == "vit" and method.citation
    assert "needs a vit model" in method.skip_reason(CNN_SPEC)
    with pytest.raises(ParamError, match="VisionTransformer"):
        method.attribute(tiny_model(), torch.rand(1, 3, 16, 16), torch.zeros(1, dtype=torch.long))
    with pytest.raises(ParamError, match="class token"):
        method.attribute(tiny_vit(class_token=False, global_pool="avg"), pixels(1), torch.zeros(1, dtype=torch.long))


def test_relevance_needs_class_token_pooling():
    model = tiny_vit(global_pool="avg")
    with pytest.raises(ParamError, match="'chefer_transformer_attribution' .*class-token pooling"):
        create_method("chefer_transformer_attribution").attribute(model, pixels(1), torch.zeros(1, dtype=torch.long))
    maps = create_method("chefer_generic").attribute(model, pixels(1), torch.zeros(1, dtype=torch.long))
    assert maps.shape == (1, 32, 32)


def test_a_frozen_model_still_gets_attention_gradients():
    model, x = tiny_vit(), pixels(2)
    target = torch.tensor([0, 2])
    expected = create_method("chefer_generic").attribute(model, x, target)
    for p in model.parameters():
        p.requires_grad_(False)
    torch.testing.assert_close(create_method("chefer_generic").attribute(model, x, target), expected)
    assert all(p.grad is None for p in model.parameters())


@pytest.mark.parametrize("build", [tiny_vit, tiny_tv_vit])
@pytest.mark.parametrize("name", TRANSFORMER_METHODS + ("gradcam", "scorecam", "ablationcam"))
def test_contract_on_a_vit_and_no_trace(build, name):
    """The registry's invariants (tests/methods/test_registry.py) on a ViT: shape, dtype, no hooks left, weights,
    gradients, training mode and the input's grad state untouched."""
    model, x = build().train(), pixels(2).requires_grad_()
    before = {key: value.clone() for key, value in model.state_dict().items()}
    params = {"layer": model.spec.target_layer} if name not in TRANSFORMER_METHODS else {}
    maps = create_method(name, **params).attribute(model, x, torch.tensor([1, 4]))
    assert maps.shape == (2, 32, 32) and maps.dtype == torch.float32 and torch.isfinite(maps).all()
    assert_no_hooks(model)
    assert all(m.training for m in model.modules()) and x.requires_grad and x.grad is None
    assert all(torch.equal(value, before[key]) for key, value in model.state_dict().items())
    assert all(p.grad is None for p in model.parameters())


def test_a_distilled_deit_has_two_prefix_tokens_and_two_heads():
    from timm.models.deit import VisionTransformerDistilled

    from salbench.models.base import NormalizedClassifier

    torch.manual_seed(0)
    net = VisionTransformerDistilled(img_size=32, patch_size=8, embed_dim=32, depth=2, num_heads=2, num_classes=5)
    model = NormalizedClassifier(net, tiny_vit().spec).eval()
    assert find_layout(model).tokens.prefix == 2
    target = torch.zeros(1, dtype=torch.long)
    for name in ("raw_attention", "attention_rollout", "chefer_generic"):
        assert create_method(name).attribute(model, pixels(1), target).shape == (1, 32, 32)
    with pytest.raises(ParamError, match="class-token pooling, one head"):
        create_method("chefer_transformer_attribution").attribute(model, pixels(1), target)
