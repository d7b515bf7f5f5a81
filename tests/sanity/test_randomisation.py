"""Randomisation stages: deterministic from (model, seed), deep copies, the right layers; ground truth of the check."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from torch import nn

from salbench.methods import create_method
from salbench.models import build_model, randomisation_order
from salbench.params import ParamError
from salbench.sanity.randomisation import (
    ORIGINAL,
    copy_model,
    randomised_layers,
    stage_groups,
    randomised_stages,
    stage_maps,
    stage_model,
    stage_names,
    stage_similarities,
)
from salbench.sanity.similarity import MEASURES, Similarity

from .helpers import NUM_CLASSES, SIZE, images, linear_model


def small_cnn() -> nn.Module:
    """small_cnn with every float parameter and buffer moved off its initial value, like a trained model."""
    model = build_model("small_cnn", 3).eval()
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for value in model.state_dict().values():
            if value.is_floating_point():
                value += 0.1 * torch.rand(value.shape, generator=generator) + 0.05
    return model


def changed_layers(original: nn.Module, stage: nn.Module) -> set[str]:
    """Names of the modules whose own parameters or buffers differ between two models."""
    before, after = original.state_dict(), stage.state_dict()
    return {key.rsplit(".", 1)[0] for key in before if not torch.equal(before[key], after[key])}


def test_stage_names_follow_the_spec_order_and_batchnorm_option():
    model = small_cnn()
    order = randomisation_order(model)
    assert stage_names(model) == [ORIGINAL, *order]
    kept = randomised_layers(model, "keep")
    assert kept == ["net.fc", "net.features.12", "net.features.8", "net.features.4", "net.features.0"]
    with pytest.raises(ParamError, match="batchnorm"):
        randomised_layers(model, "freeze")


@pytest.mark.parametrize("mode", ["cascading", "independent"])
def test_each_stage_randomises_exactly_its_layers(mode):
    model = small_cnn()
    layers = randomised_layers(model)
    stages = [(name, copy.deepcopy(stage)) for name, stage in randomised_stages(model, seed=3, mode=mode)]
    assert [name for name, _ in stages] == [ORIGINAL, *layers]
    for k, (_, stage) in enumerate(stages):
        expected = set(layers[:k]) if mode == "cascading" else set(layers[k - 1:k])
        assert changed_layers(model, stage) == expected


def test_batchnorm_reset_restores_the_initial_state_and_keep_leaves_it():
    model = small_cnn()
    bn = model.get_submodule("net.features.13")
    with torch.no_grad():
        bn.weight.fill_(2.0)
        bn.running_mean.fill_(0.5)
    reset = stage_model(model, seed=0, stage=2)  # fc, then features.13
    assert reset.get_submodule("net.features.13").weight.eq(1).all()
    assert reset.get_submodule("net.features.13").running_mean.eq(0).all()
    kept = stage_model(model, seed=0, stage=len(randomised_layers(model, "keep")), batchnorm="keep")
    assert kept.get_submodule("net.features.13").weight.eq(2).all()
    assert kept.get_submodule("net.features.13").running_mean.eq(0.5).all()


def test_layers_get_their_own_initialiser():
    model = linear_model()
    with torch.no_grad():
        model.net.logits.weight.fill_(10.0)
    stage = stage_model(model, seed=0, stage=1)
    bound = 1 / np.sqrt(3 * SIZE * SIZE)  # Conv2d.reset_parameters: kaiming_uniform(a=sqrt(5)) = U(-1/sqrt(fan_in), ..)
    weight = stage.net.logits.weight
    assert weight.abs().max() <= bound and weight.std() > bound / 3


def test_stages_are_deterministic_from_model_and_seed_only():
    model = small_cnn()
    torch.manual_seed(123)
    first = [copy.deepcopy(m.state_dict()) for _, m in randomised_stages(model, seed=7)]
    torch.manual_seed(999)  # global RNG state must not matter ...
    state = torch.random.get_rng_state()
    second = [copy.deepcopy(m.state_dict()) for _, m in randomised_stages(model, seed=7)]
    assert torch.equal(torch.random.get_rng_state(), state)  # ... nor be consumed
    for a, b in zip(first, second):
        assert all(torch.equal(a[key], b[key]) for key in a)
    # stage k alone (without visiting stages before it) is the same model
    k = 5
    alone = stage_model(model, seed=7, stage=k).state_dict()
    assert all(torch.equal(alone[key], first[k][key]) for key in alone)
    other = stage_model(model, seed=8, stage=k).state_dict()
    assert not torch.equal(other["net.fc.weight"], first[k]["net.fc.weight"])


def test_independent_stage_equals_the_cascade_on_its_layer():
    model = small_cnn()
    cascade = stage_model(model, seed=1, stage=3)
    independent = stage_model(model, seed=1, stage=3, mode="independent")
    name = randomised_layers(model)[2]
    for key, value in independent.get_submodule(name).state_dict().items():
        assert torch.equal(value, cascade.get_submodule(name).state_dict()[key])


def test_original_is_untouched_and_shares_no_tensors_with_the_stages():
    model = small_cnn()
    before = {key: value.clone() for key, value in model.state_dict().items()}
    originals = {p.data_ptr() for p in model.parameters()}
    for mode in ("cascading", "independent"):
        for _, stage in randomised_stages(model, seed=0, mode=mode):
            assert originals.isdisjoint(p.data_ptr() for p in stage.parameters()) and not stage.training
    assert all(torch.equal(before[key], value) for key, value in model.state_dict().items())
    with pytest.raises(IndexError):
        stage_model(model, seed=0, stage=len(stage_names(model)))


def test_model_independent_map_is_identical_at_every_stage():
    """Ground truth: the Sobel control ignores the model, so every stage's map equals the original's."""
    model = linear_model()
    x, t = images(4), torch.arange(4) % NUM_CLASSES
    names, maps = stage_maps(create_method("sobel"), model, x, t, seed=0)
    assert maps.shape == (2, 4, SIZE, SIZE) and names == [ORIGINAL, "net.logits"]
    for measure, values in stage_similarities(maps, Similarity()).items():
        np.testing.assert_allclose(values.numpy(), 1.0, atol=1e-12, err_msg=measure)


def test_gradient_of_a_linear_model_is_its_randomised_weights():
    """Ground truth: the gradient of a linear model is its weight row, so it changes with the randomised weights."""
    model = linear_model()
    x, t = images(4), torch.arange(4) % NUM_CLASSES
    _, maps = stage_maps(create_method("gradient"), model, x, t, seed=0)
    for stage, (_, net_model) in enumerate(randomised_stages(model, seed=0)):
        expected = (net_model.net.logits.weight[t] / net_model.std).abs().amax(dim=1)
        torch.testing.assert_close(maps[stage], expected.detach())
    similarity = stage_similarities(maps, Similarity(["spearman_abs", "ssim"]))
    assert similarity["spearman_abs"][0].eq(1).all() and similarity["spearman_abs"][1].abs().max() < 0.2
    assert similarity["ssim"][1].max() < 0.2


def test_stage_similarities_shape_and_original_row():
    model = small_cnn()
    x, t = images(3, size=32), torch.tensor([0, 1, 2])
    names, maps = stage_maps(create_method("gradient"), model, x, t, seed=0, batch_size=2)
    values = stage_similarities(maps, Similarity())
    assert set(values) == set(MEASURES)
    for measure, value in values.items():
        assert value.shape == (len(names), 3) and value.dtype == torch.float64
        np.testing.assert_allclose(value[0].numpy(), 1.0, atol=1e-12, err_msg=measure)


@pytest.mark.parametrize("arch", ["small_cnn", "small_resnet"])
def test_spec_blocks_cover_every_layer_once_and_stages_follow_them(arch):
    model = build_model(arch, 4).eval()
    blocks = model.spec.extra["randomisation_blocks"]
    groups = stage_groups(model, blocks=blocks)
    assert [name for name, _ in groups] == [name for name, _ in blocks]
    assert sorted(layer for _, layers in groups for layer in layers) == sorted(randomised_layers(model))
    assert stage_names(model, blocks=blocks)[1:] == [name for name, _ in blocks]
    names = []
    for k, (name, stage) in enumerate(randomised_stages(model, 3, blocks=blocks)):
        names.append(name)
        alone = stage_model(model, 3, k, blocks=blocks)
        for key, value in stage.state_dict().items():
            assert torch.equal(value, alone.state_dict()[key]), (name, key)
    assert names == stage_names(model, blocks=blocks)


def test_blocks_that_miss_or_repeat_a_layer_are_an_error():
    model = build_model("small_cnn", 4).eval()
    blocks = model.spec.extra["randomisation_blocks"]
    with pytest.raises(ValueError, match="exactly once"):
        stage_groups(model, blocks=blocks[:-1])
    with pytest.raises(ValueError, match="exactly once"):
        stage_groups(model, blocks=[*blocks, ["again", ["net.fc"]]])


def test_copy_model_is_a_deep_copy_with_its_own_hooks():
    model = small_cnn()
    calls = []
    model.net.fc.register_forward_hook(lambda *_: calls.append("original"))
    copied = copy_model(model)
    assert type(copied) is type(model) and copied.spec == model.spec and not copied.training
    assert {p.data_ptr() for p in model.parameters()}.isdisjoint(p.data_ptr() for p in copied.parameters())
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), copied.state_dict().values()))
    copied.net.features[0].register_forward_hook(lambda *_: calls.append("copy"))  # not on the original
    model(images(1))
    assert calls == ["original"]
    copied(images(1))
    assert calls == ["original", "copy", "original"]  # the existing hook was copied too


RESNET_LAYERS_BOTTOM_UP = [
    *(f"net.conv1.{i}" for i in (0, 1, 3, 4, 6)), "net.bn1",
    "net.layer1.0.conv1", "net.layer1.0.bn1", "net.layer1.0.conv2", "net.layer1.0.bn2",
    *(f"net.layer{k}.{b}.{layer}" for k in (2, 3) for b in (0, 1)
      for layer in ("conv1", "bn1", "conv2", "bn2", *(("downsample.0", "downsample.1") if b == 0 else ()))),
    "net.layer4.0.conv1", "net.layer4.0.bn1", "net.layer4.0.conv2", "net.layer4.0.bn2", "net.layer4.0.downsample.0",
    "net.layer4.0.downsample.1", "net.fc",
]


@pytest.mark.parametrize(("arch", "granularity", "expected"), [
    ("small_cnn", "block", ["conv1", "conv2", "conv3", "conv4", "fc"]),
    ("small_cnn", "layer", [*(f"net.features.{i}" for i in (0, 1, 4, 5, 8, 9, 12, 13)), "net.fc"]),
    ("small_resnet", "block", ["stem", "layer1", "layer2", "layer3", "layer4", "fc"]),
    # a block's shortcut (downsample conv + batch norm) runs after its second conv in timm's BasicBlock
    ("small_resnet", "layer", RESNET_LAYERS_BOTTOM_UP),
])
def test_bottom_up_stages_follow_the_forward_order(arch, granularity, expected):
    model = build_model(arch, 4).eval()
    blocks = model.spec.extra["randomisation_blocks"] if granularity == "block" else None
    names = stage_names(model, blocks=blocks, order="bottom_up", example=images(1, size=32))
    assert names == [ORIGINAL, *expected]
    top_down = stage_names(model, blocks=blocks)
    if arch == "small_cnn" or granularity == "block":  # sequential stacks: the exact reverse of top-down
        assert names[1:] == top_down[:0:-1]


class HeadFirst(nn.Module):
    """Registers its head before its body: registration order is not forward order."""

    def __init__(self) -> None:
        super().__init__()
        self.head = nn.Linear(4, NUM_CLASSES)
        self.body = nn.Conv2d(3, 4, 3, padding=1)
        self.pool = nn.AdaptiveAvgPool2d(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.pool(self.body(x)).flatten(1))


def test_bottom_up_is_execution_order_not_registration_order_and_ends_where_top_down_ends():
    model = HeadFirst().eval()
    registered = [name for name, m in model.named_modules() if any(True for _ in m.parameters(recurse=False))]
    assert registered == ["head", "body"]  # Quantus's bottom_up (named_modules order) would start at the head
    assert stage_names(model, order="bottom_up", example=images(1)) == [ORIGINAL, "body", "head"]
    for k, (name, stage) in enumerate(randomised_stages(model, 3, order="bottom_up", example=images(1))):
        assert changed_layers(model, stage) == {"body", "head"}.intersection(["body", "head"][:k]), name
    # each layer's draw depends on (seed, layer name) only: both orders end in the same fully random model
    cnn = small_cnn()
    last = len(stage_names(cnn)) - 1
    bottom = stage_model(cnn, 5, last, order="bottom_up", example=images(1, size=32)).state_dict()
    top = stage_model(cnn, 5, last).state_dict()
    assert all(torch.equal(bottom[key], top[key]) for key in top)
    with pytest.raises(ValueError, match="example input"):
        stage_names(cnn, order="bottom_up")
    with pytest.raises(ParamError, match="order"):
        stage_names(cnn, order="sideways", example=images(1, size=32))


def test_bottom_up_stage_maps_reuse_given_original_maps():
    model = small_cnn()
    x, t = images(2, size=32), torch.tensor([0, 1])
    names, maps = stage_maps(create_method("gradient"), model, x, t, seed=0, order="bottom_up")
    assert names[1] == "net.features.0"
    given = torch.full_like(maps[0], 7.0)
    _, reused = stage_maps(create_method("gradient"), model, x, t, seed=0, order="bottom_up", original=given)
    assert torch.equal(reused[0], given) and torch.equal(reused[1:], maps[1:])
