"""Attention rollout (Abnar & Zuidema 2020) and raw attention: hand-made attention, closed forms, properties."""

from __future__ import annotations

import contextlib

import pytest
import torch

from salbench.methods import create_method
from salbench.methods.transformer import discard_lowest, rollout_matrix
from salbench.methods.transformer_attention import find_layout, recorded_blocks
from salbench.params import ParamError

from .threads import one_thread  # noqa: F401  (fixture)
from .transformer_models import pixels, tiny_tv_vit, tiny_vit

pytestmark = pytest.mark.usefixtures("one_thread")

#: a 1 x 2 patch grid: N = 3 tokens (class, left patch, right patch), two heads
SIZE = (8, 16)
BLOCK1 = torch.tensor([[[1.0, 0, 0], [0, 1, 0], [0, 0, 1]],   # head 0: identity
                       [[0.0, 1, 0], [0, 1, 0], [0, 0, 1]]])  # head 1: the class token reads the left patch
BLOCK2 = torch.tensor([[[0.0, 0, 1], [0, 1, 0], [1, 0, 0]]] * 2)  # both heads: class <-> right patch


@contextlib.contextmanager
def forced_attention(model, attentions):
    """Every forward pass uses ``attentions[b]`` (``[H,N,N]``) as block b's attention probabilities."""
    blocks = find_layout(model).blocks
    handles = [block.attn.attn_drop.register_forward_hook(lambda m, i, out, a=a: a.expand_as(out).clone())
               for block, a in zip(blocks, attentions)]
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()


def grid_values(method: str, model, x, target=None, **params) -> torch.Tensor:
    """The two patch values of a method's ``1 x 2`` grid map (nearest upsampling keeps them exactly)."""
    maps = create_method(method, upsample="nearest", **params).attribute(
        model, x, torch.zeros(x.shape[0], dtype=torch.long) if target is None else target)
    return maps[:, 0, [0, 8]]


@pytest.mark.parametrize("fusion, expected", [
    # mean: A^1 = [[.75,.25,0],[0,1,0],[0,0,1]], A^2 = [[.5,0,.5],[0,1,0],[.5,0,.5]]: row 0 of A^2 A^1 = [.375,.125,.5]
    ("mean", [0.125, 0.5]),
    # max: A^1 row 0 = rownorm(0.5 [1,1,0] + 0.5 [1,0,0]) = [2/3, 1/3, 0] -> row 0 of R = [1/3, 1/6, 1/2]
    ("max", [1 / 6, 0.5]),
    # min: F = diag(0,1,1) -> A^1 = I -> row 0 of R = row 0 of A^2 = [.5, 0, .5]
    ("min", [0.0, 0.5]),
])
def test_rollout_of_hand_made_two_block_attention(fusion, expected):
    model, x = tiny_vit(size=SIZE), pixels(2, SIZE)
    with forced_attention(model, [BLOCK1, BLOCK2]):
        values = grid_values("attention_rollout", model, x, head_fusion=fusion)
    torch.testing.assert_close(values, torch.tensor([expected, expected]), rtol=0, atol=1e-6)


def test_rollout_matrix_product_by_hand():
    fused = [BLOCK1.mean(0, keepdim=True), BLOCK2.mean(0, keepdim=True)]
    a1, a2 = (rollout_matrix(f) for f in fused)
    torch.testing.assert_close(a1[0], torch.tensor([[0.75, 0.25, 0], [0, 1, 0], [0, 0, 1]]))
    expected = torch.tensor([[0.375, 0.125, 0.5], [0, 1, 0], [0.375, 0.125, 0.5]])
    torch.testing.assert_close((a2 @ a1)[0], expected)


def test_start_layer_skips_the_first_blocks():
    model, x = tiny_vit(size=SIZE), pixels(1, SIZE)
    with forced_attention(model, [BLOCK1, BLOCK2]):
        values = grid_values("attention_rollout", model, x, start_layer=1)
    torch.testing.assert_close(values, torch.tensor([[0.0, 0.5]]))  # row 0 of A^2 alone


def test_uniform_attention_has_the_closed_form():
    """``A = 11^T/N`` in every block: ``R = 0.5^L I + (1 - 0.5^L) 11^T/N``, every patch entry ``(1 - 0.5^L)/N``."""
    for depth in (1, 2, 3):
        model, x = tiny_vit(size=SIZE, depth=depth), pixels(1, SIZE)
        with forced_attention(model, [torch.full((2, 3, 3), 1 / 3)] * depth):
            values = grid_values("attention_rollout", model, x)
        torch.testing.assert_close(values, torch.full((1, 2), (1 - 0.5**depth) / 3))


def test_identity_attention_gives_a_zero_map():
    model, x = tiny_vit(size=SIZE), pixels(1, SIZE)
    with forced_attention(model, [torch.eye(3).expand(2, 3, 3)] * 2):
        assert grid_values("attention_rollout", model, x).abs().max() == 0


def test_discard_zeroes_the_smallest_entries_but_never_the_first():
    fused = torch.tensor([[[0.1, 0.5, 0.4], [0.3, 0.3, 0.4], [0.05, 0.9, 0.05]]])
    # floor(0.5 * 9) = 4 smallest: 0.05, 0.05, 0.1 (entry (0,0): kept), 0.3 -> one 0.3 and the rest zeroed
    kept = discard_lowest(fused, 0.5)
    assert kept[0, 0, 0] == pytest.approx(0.1)
    assert int((kept == 0).sum()) == 3 and kept[0, 2, 1] == pytest.approx(0.9)
    assert torch.equal(discard_lowest(fused, 0.0), fused)


@pytest.mark.parametrize("build", [tiny_vit, tiny_tv_vit])
@pytest.mark.parametrize("params", [{}, {"head_fusion": "max", "discard_ratio": 0.9}, {"head_fusion": "min"}])
def test_rollout_rows_are_stochastic_and_the_map_class_independent(build, params):
    model, x = build(), pixels(3)
    layout = find_layout(model)
    with recorded_blocks(layout) as records, torch.no_grad():
        model(x)
    method = create_method("attention_rollout", **params)
    matrices = [rollout_matrix(discard_lowest(r.attention.mean(1), params.get("discard_ratio", 0.0)))
                for r in records]
    for matrix in matrices + [matrices[1] @ matrices[0]]:
        torch.testing.assert_close(matrix.sum(-1), torch.ones(3, 17))
    maps = [method.attribute(model, x, torch.full((3,), c)) for c in (0, 4)]
    assert torch.equal(maps[0], maps[1])
    per_item = torch.cat([method.attribute(model, x[i : i + 1], torch.zeros(1, dtype=torch.long)) for i in range(3)])
    torch.testing.assert_close(maps[0], per_item, rtol=0, atol=1e-7)


@pytest.mark.parametrize("build", [tiny_vit, tiny_tv_vit])
def test_raw_attention_is_the_recorded_class_row_of_the_last_block(build):
    """The reference row comes from an independent hook (timm: attn_drop; torchvision: MHA asked for weights)."""
    model, x = build(), pixels(2)
    seen = []
    if build is tiny_vit:
        handle = model.net.blocks[-1].attn.attn_drop.register_forward_hook(lambda m, i, out: seen.append(out))
    else:
        mha = model.net.encoder.layers[-1].self_attention
        pre = mha.register_forward_pre_hook(
            lambda m, args, kwargs: (args, {**kwargs, "need_weights": True, "average_attn_weights": False}),
            with_kwargs=True)
        handle = mha.register_forward_hook(lambda m, i, out: seen.append(out[1]))
    with torch.no_grad():
        model(x)
    handle.remove()
    if build is tiny_tv_vit:
        pre.remove()
    expected = seen[0].mean(1)[:, 0, 1:].reshape(2, 4, 4)
    maps = create_method("raw_attention", upsample="nearest").attribute(model, x, torch.zeros(2, dtype=torch.long))
    torch.testing.assert_close(maps[:, ::8, ::8], expected, rtol=0, atol=1e-6)


def test_rollout_parameters_are_checked():
    with pytest.raises(ParamError, match="head_fusion"):
        create_method("attention_rollout", head_fusion="median")
    with pytest.raises(ParamError, match="discard_ratio"):
        create_method("attention_rollout", discard_ratio=1.0)
    with pytest.raises(ParamError, match="start_layer"):
        create_method("attention_rollout", start_layer=-1)
    with pytest.raises(ParamError, match="start_layer 2 >= the model's 2 blocks"):
        create_method("attention_rollout", start_layer=2).attribute(tiny_vit(), pixels(1), torch.zeros(1).long())
