"""The sanity checks on vision transformers: randomisation stages per block (token parameters redrawn from their
trained statistics), input invariance compensated in the patch embedding, and a short sanity run on small_vit."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from salbench.methods import create_method
from salbench.models import build_model
from salbench.sanity.invariance import first_layer, input_invariance, mean_shifted_model
from salbench.sanity.randomisation import FLAT_STD, ORIGINAL, randomised_stages, redraw_own_parameters_, stage_groups
from salbench.sanity.run import SanitySettings, model_checks

from models.test_vit import tiny_torchvision_vit  # tests/ is on sys.path

SETTINGS = SanitySettings(items=2, modes=("cascading",), orders=("top_down", "bottom_up"), measures=("spearman_abs",))


def small_vit(seed: int = 0) -> torch.nn.Module:
    """small_vit with every parameter moved off its initial value, like a trained model."""
    torch.manual_seed(seed)
    model = build_model("small_vit", 3).eval()
    with torch.no_grad():
        for value in model.parameters():
            value += 0.05 * torch.randn_like(value) + 0.01
    return model


def changed_owners(original: torch.nn.Module, stage: torch.nn.Module) -> set[str]:
    before, after = original.state_dict(), stage.state_dict()
    return {key.rsplit(".", 1)[0] for key in before if not torch.equal(before[key], after[key])}


@pytest.mark.parametrize("mode", ["cascading", "independent"])
def test_each_vit_stage_randomises_exactly_its_block(mode):
    model = small_vit()
    blocks = model.spec.extra["randomisation_blocks"]
    groups = stage_groups(model, blocks=blocks)
    stages = [(name, copy.deepcopy(stage)) for name, stage in randomised_stages(model, 1, mode, blocks=blocks)]
    assert [name for name, _ in stages] == [ORIGINAL, *(name for name, _ in groups)]
    for k, (_, stage) in enumerate(stages[1:], 1):
        chosen = groups[:k] if mode == "cascading" else groups[k - 1:k]
        assert changed_owners(model, stage) == {layer for _, layers in chosen for layer in layers}


def test_token_parameters_are_redrawn_from_their_trained_statistics():
    model = small_vit()
    net = copy.deepcopy(model.net)
    with torch.no_grad():
        net.cls_token.zero_()  # a flat tensor: drawn with FLAT_STD around its value
    redraw_own_parameters_(net, seed=5)
    trained = model.net.pos_embed
    assert not torch.equal(net.pos_embed, trained) and net.pos_embed.shape == trained.shape
    assert abs(net.pos_embed.mean() - trained.mean()) < 0.01 and abs(net.pos_embed.std() / trained.std() - 1) < 0.1
    assert abs(net.cls_token.std() / FLAT_STD - 1) < 0.3
    torch.testing.assert_close(net.blocks[0].attn.qkv.weight, model.net.blocks[0].attn.qkv.weight)  # own only
    again = copy.deepcopy(net)
    redraw_own_parameters_(again, seed=5)
    redraw_own_parameters_(net, seed=5)
    torch.testing.assert_close(again.pos_embed, net.pos_embed)  # the seed alone decides


@pytest.mark.parametrize("build", [small_vit, tiny_torchvision_vit], ids=["timm", "torchvision"])
def test_input_shift_is_compensated_in_the_patch_embedding(build):
    model = build()
    size = model.spec.input_size
    x = torch.rand(3, 3, size, size, generator=torch.Generator().manual_seed(0))
    shifted = mean_shifted_model(model, -1.0)
    conv = model.spec.extra["input_layer"]
    assert first_layer(model) == conv
    # the patch embedding carries the compensation (before: the token owner came first, so the wrapper's
    # normalisation mean moved instead, and the network never saw the shift)
    torch.testing.assert_close(shifted.mean, model.mean)
    assert not torch.equal(shifted.get_submodule(conv).bias, model.get_submodule(conv).bias)
    patches = {}
    for name, net in (("original", model), ("shifted", shifted)):
        net.get_submodule(conv).register_forward_hook(lambda _m, _a, out, name=name: patches.__setitem__(name, out))
    with torch.no_grad():
        torch.testing.assert_close(shifted(x - 1.0), model(x), atol=1e-4, rtol=0)
    torch.testing.assert_close(patches["shifted"], patches["original"], atol=1e-4, rtol=0)


def test_gradient_is_input_invariant_on_a_vit_and_input_x_gradient_is_not():
    model = small_vit()
    x = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    target = torch.tensor([0, 2])
    gradient = input_invariance(create_method("gradient"), model, x, target, -1.0, batch_size=2)
    times_input = input_invariance(create_method("input_x_gradient"), model, x, target, -1.0, batch_size=2)
    assert (gradient["relative_l1"] < 1e-3).all()
    assert (times_input["relative_l1"] > 0.1).all()


def test_a_short_sanity_run_on_a_vit():
    model, permuted = small_vit(0), small_vit(1)
    x = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(2))
    blocks = model.spec.extra["randomisation_blocks"]
    checks = ["model_sensitivity", "bottom_layer_sensitivity", "input_invariance", "data_randomisation"]
    result = model_checks(create_method("gradient"), model, permuted, x, torch.tensor([0, 1]), ["a", "b"], SETTINGS,
                          0, blocks, 2, "cpu", checks)
    table = result.table
    assert set(table["check"]) == {"model_sensitivity", "model_sensitivity_bottom_up", "input_invariance",
                                   "data_randomisation"}
    top_down = table[(table["check"] == "model_sensitivity") & (table["statistic"] == "spearman_abs")]
    assert list(top_down.drop_duplicates("stage")["stage"]) == [ORIGINAL, "head", "block3", "block2", "block1",
                                                               "block0", "embedding"]
    bottom_up = table[table["check"] == "model_sensitivity_bottom_up"].drop_duplicates("stage")["stage"]
    assert list(bottom_up) == [ORIGINAL, "embedding", "block0", "block1", "block2", "block3", "head"]
    np.testing.assert_allclose(top_down[top_down["stage_index"] == 0]["value"], 1.0, atol=1e-6)
    last = top_down[top_down["stage_index"] == top_down["stage_index"].max()]["value"]
    assert (last < 0.9).all()  # the fully randomised ViT's gradient is another map
    invariance = table[(table["check"] == "input_invariance") & (table["statistic"] == "relative_l1")]
    assert (invariance["value"] < 1e-3).all()
