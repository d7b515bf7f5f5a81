"""Chefer, Gur & Wolf: the generic rule (ICCV 2021) by hand and against an independent hook implementation; the
gradient-weighted relevance (CVPR 2021): its rules' sums and signs on a toy transformer."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from salbench.methods import create_method, transformer
from salbench.methods.transformer import class_row, plus_identity, positive_head_mean
from salbench.methods.transformer_attention import find_layout, recorded_blocks
from salbench.methods.transformer_lrp import add_rule, block_rule, fork_rule, linear_rule, matmul_rule, safe_divide

from .threads import one_thread  # noqa: F401  (fixture)
from .transformer_models import pixels, tiny_tv_vit, tiny_vit

pytestmark = pytest.mark.usefixtures("one_thread")
TARGET = torch.tensor([1, 3, 0])
METHODS = ("chefer_generic", "chefer_transformer_attribution")


def test_transformer_attribution_matches_the_authors_code():
    """Golden values from the authors' ``ViT_LRP.VisionTransformer.relprop`` (one image at a time) on the same tiny
    ViT's weights (the fixture's ``source`` and ``model`` say how); our batch of three reproduces them."""
    fixture = json.loads((Path(__file__).parent / "fixtures" / "chefer_cvpr_tiny_vit.json").read_text())
    model = tiny_vit(seed=0)
    model.net.norm.eps = 1e-5  # the authors' final LayerNorm has torch's default eps
    maps = create_method("chefer_transformer_attribution", upsample="nearest").attribute(
        model, pixels(3), torch.tensor(fixture["targets"]))
    expected = torch.tensor(fixture["class_row_patches"]).reshape(3, 4, 4)
    torch.testing.assert_close(maps[:, ::8, ::8], expected, rtol=1e-4, atol=1e-7)  # float32 sums' order


def test_generic_rule_by_hand():
    """One block, two heads, three tokens: ``A = E_h[(grad * A)^+]``, ``R = I + A``; then a second block on top."""
    attention = torch.tensor([[[0.5, 0.5, 0], [0, 1, 0], [0, 0, 1]], [[0, 0.5, 0.5], [0, 1, 0], [0, 0, 1]]])[None]
    grad = torch.zeros(1, 2, 3, 3)
    grad[0, 0, 0] = torch.tensor([2.0, -1, 0])  # head 0, row 0: (1, -0.5, 0) -> (1, 0, 0)
    grad[0, 1, 0] = torch.tensor([0.0, 4, 2])   # head 1, row 0: (0, 2, 1)
    first = positive_head_mean(grad, attention)
    torch.testing.assert_close(first[0], torch.tensor([[0.5, 1, 0.5], [0, 0, 0], [0, 0, 0]]))
    second = torch.zeros(1, 3, 3)
    second[0, 0, 2] = 1.0  # block 2: the class token takes the right patch once more
    rows = class_row([plus_identity(first), plus_identity(second)])[0]
    # (I + A2)(I + A1), row 0 = [1.5, 1, 0.5] + 1 * row 2 of (I + A1) = [1.5, 1, 1.5]
    torch.testing.assert_close(rows, torch.tensor([1.5, 1.0, 1.5]))


def notebook_generic(model, x: torch.Tensor, target: int) -> torch.Tensor:
    """The authors' ViT-notebook procedure, for one image: attention gradients by tensor hooks on timm's
    ``attn_drop`` output, ``R = I``, ``R += E_h[(grad * A)^+] R`` per block; the class row's patch entries."""
    records = []

    def keep(module, inputs, out):
        records.append([out, None])
        out.register_hook(lambda g, r=records[-1]: r.__setitem__(1, g))

    handles = [block.attn.attn_drop.register_forward_hook(keep) for block in model.net.blocks]
    with torch.enable_grad():
        logits = model(x)
        logits[0, target].backward()
    for handle in handles:
        handle.remove()
    relevance = torch.eye(records[0][0].shape[-1])
    for attention, grad in records:
        cam = (grad[0] * attention[0]).clamp(min=0).mean(0)
        relevance = relevance + cam @ relevance
    return relevance[0, 1:].detach()


def test_generic_equals_the_notebook_procedure_per_image():
    model, x = tiny_vit(), pixels(3)
    maps = create_method("chefer_generic", upsample="nearest").attribute(model, x, TARGET)
    for i in range(3):
        expected = notebook_generic(model, x[i : i + 1], int(TARGET[i])).reshape(4, 4)
        torch.testing.assert_close(maps[i, ::8, ::8], expected, rtol=1e-5, atol=1e-7)


def test_transformer_attribution_with_attention_as_relevance_is_the_generic_rule(monkeypatch):
    """The reference's property: with ``R^(A) := A`` the CVPR pipeline reproduces the ICCV rule exactly."""
    model, x = tiny_vit(), pixels(3)
    generic = create_method("chefer_generic").attribute(model, x, TARGET)
    monkeypatch.setattr(transformer, "attention_relevances",
                        lambda layout, records, *args: [r.attention.detach() for r in records])
    swapped = create_method("chefer_transformer_attribution").attribute(model, x, TARGET)
    torch.testing.assert_close(swapped, generic, rtol=0, atol=0)


@pytest.mark.parametrize("build", [tiny_vit, tiny_tv_vit])
@pytest.mark.parametrize("name", METHODS)
def test_maps_are_non_negative_class_dependent_and_a_batch_equals_its_items(build, name):
    model, x = build(), pixels(3)
    method = create_method(name)
    maps = method.attribute(model, x, TARGET)
    assert maps.shape == (3, 32, 32) and maps.dtype == torch.float32 and (maps >= 0).all()
    assert maps.flatten(1).amax(1).min() > 0
    per_item = torch.cat([method.attribute(model, x[i : i + 1], TARGET[i : i + 1]) for i in range(3)])
    torch.testing.assert_close(maps, per_item, rtol=1e-5, atol=1e-9)
    other = method.attribute(model, x, (TARGET + 1) % 5)
    assert not torch.allclose(maps, other)


def test_zero_attention_gradient_gives_a_zero_map(monkeypatch):
    """``grad A = 0``: every block's weighted attention is 0, ``C = I``, and the class row has no patch entries."""
    model, x = tiny_vit(), pixels(2)
    real = transformer.attention_forward

    def zero_gradients(*args, **kwargs):
        records, grads, head = real(*args, **kwargs)
        return records, [torch.zeros_like(g) for g in grads], head

    monkeypatch.setattr(transformer, "attention_forward", zero_gradients)
    for name in METHODS:
        assert create_method(name).attribute(model, x, TARGET[:2]).abs().max() == 0


def test_safe_divide_is_the_authors():
    b = torch.tensor([2.0, -2.0, 0.0, -1e-9, 1e-12])
    torch.testing.assert_close(safe_divide(torch.ones(5), b),
                               torch.tensor([1 / (2 + 1e-9), 1 / (-2 + 1e-9), 0.0, 1 / 1e-9, 1 / (1e-12 + 1e-9)]))


def test_linear_rule_conserves_and_keeps_positive_relevance_positive():
    torch.manual_seed(0)
    x, weight = torch.randn(4, 6), torch.randn(3, 6)
    relevance = torch.rand(4, 3)
    spread = linear_rule(x, weight, relevance)
    assert (spread >= 0).all()  # alpha=1, beta=0: only x+w+ and x-w- (both >= 0) carry relevance
    z = x.clamp(min=0) @ weight.clamp(min=0).T + x.clamp(max=0) @ weight.clamp(max=0).T
    assert (z == 0).any()  # an output with no positive contribution: its relevance is dropped, as the authors'
    torch.testing.assert_close(spread.sum(1), (relevance * (z > 0)).sum(1))
    # by hand: one output, x = (1, -2), w = (3, 1): positive parts x+w+ = 3 and x-w- = 0 -> all to x_1
    torch.testing.assert_close(linear_rule(torch.tensor([[1.0, -2]]), torch.tensor([[3.0, 1]]), torch.tensor([[1.0]])),
                               torch.tensor([[3 / (3 + 1e-9), 0.0]]))


def test_two_operand_rules_split_the_total():
    torch.manual_seed(0)
    a, b, relevance = torch.randn(2, 3, 4), torch.randn(2, 4, 5), torch.randn(2, 3, 5)
    ra, rb = matmul_rule(a, b, relevance)
    for share in (ra, rb):  # the z-rule gives each operand of a product the whole relevance
        torch.testing.assert_close(share.sum((1, 2)), relevance.sum((1, 2)), rtol=1e-4, atol=1e-5)
    x, y = torch.randn(2, 5, 3), torch.randn(2, 5, 3)
    rx, ry = add_rule(x, y, relevance := torch.randn(2, 5, 3))
    torch.testing.assert_close((rx + ry).sum((1, 2)), relevance.sum((1, 2)))  # per item, not over the batch
    ratio = (rx.sum((1, 2)) / ry.sum((1, 2))).abs()
    naive = ((x * safe_divide(relevance, x + y)).sum((1, 2)) / (y * safe_divide(relevance, x + y)).sum((1, 2))).abs()
    torch.testing.assert_close(ratio, naive)
    torch.testing.assert_close(fork_rule(x, rx, ry), rx + ry, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("build", [tiny_vit, tiny_tv_vit])
def test_a_block_conserves_relevance(build):
    """Every rule is conservative (biases aside), so the relevance entering a block sums to what leaves it."""
    model, x = build(), pixels(2)
    layout = find_layout(model)
    with recorded_blocks(layout, with_inputs=True) as records, torch.no_grad():
        model(x)
    relevance = torch.randn_like(records[-1].tensors["x_in"])
    below, r_attention = block_rule(layout, layout.blocks[-1], records[-1], relevance)
    torch.testing.assert_close(below.sum((1, 2)), relevance.sum((1, 2)), rtol=1e-4, atol=1e-5)
    assert r_attention.shape == records[-1].attention.shape
