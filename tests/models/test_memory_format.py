"""Channels-last layout on the CPU (``ModelSpec.cpu_channels_last``) speeds the convolutions up and changes no
map beyond float rounding: every registered method gives the same maps on both layouts."""

from __future__ import annotations

import copy
import functools

import pytest
import torch

from salbench.methods import list_methods
from salbench.models import build_model, load_checkpoint, save_checkpoint, to_device

from methods.helpers import CHEAP_PARAMS, images, make_method
from methods.threads import one_thread  # noqa: F401  (fixture)

SIZE = 32
#: pairs whose maps amplify rounding, with the reason; they get a tolerance of 1 % of the map's scale
ROUNDING_SENSITIVE = {
    ("small_cnn", "integrated_gradients"): "the path starts at black, where max-pool windows tie",
    ("small_cnn", "integrated_gradients@captum"): "the path starts at black, where max-pool windows tie",
    ("small_resnet", "lrp_epsilon@zennit"): "epsilon 1e-6 divides by near-zero denominators",
}


def conv_weights(model: torch.nn.Module) -> list[torch.Tensor]:
    """The 4-d parameters with a spatial extent (a 1x1 kernel is contiguous in both layouts)."""
    return [p for p in model.parameters() if p.dim() == 4 and p.shape[-2:] != (1, 1)]


@pytest.mark.parametrize("arch, channels_last", [("small_cnn", True), ("small_resnet", True), ("small_coda", False)])
def test_to_device_uses_channels_last_on_the_cpu_only_where_the_spec_asks(arch, channels_last):
    model = to_device(build_model(arch, 3), "cpu")
    assert model.spec.cpu_channels_last is channels_last
    assert all(w.is_contiguous(memory_format=torch.channels_last) is channels_last for w in conv_weights(model))
    assert all(w.is_contiguous() is not channels_last for w in conv_weights(model))
    assert not channels_last or conv_weights(model)


def test_checkpoints_load_in_the_cpu_layout_and_keep_their_outputs(tmp_path):
    torch.manual_seed(0)
    model = build_model("small_cnn", 4).eval()
    save_checkpoint(to_device(copy.deepcopy(model), "cpu"), tmp_path / "model.pt", {"num_classes": 4})
    loaded = load_checkpoint(tmp_path / "model.pt")
    x = images(4, size=SIZE)
    assert all(w.is_contiguous(memory_format=torch.channels_last) for w in conv_weights(loaded))
    torch.testing.assert_close(loaded(x), model(x), rtol=1e-4, atol=1e-5)


@functools.cache
def layouts(arch: str) -> tuple[torch.nn.Module, torch.nn.Module]:
    torch.manual_seed(0)
    model = build_model(arch, 5).eval()
    return model, copy.deepcopy(model).to(memory_format=torch.channels_last)


@pytest.mark.usefixtures("one_thread")
@pytest.mark.parametrize("name", list_methods())
@pytest.mark.parametrize("arch", ["small_cnn", "small_resnet"])
def test_maps_do_not_depend_on_the_memory_layout(arch, name):
    contiguous, channels_last = layouts(arch)
    method = make_method(name, contiguous.spec, **CHEAP_PARAMS.get(name, {}))
    if method.skip_reason(contiguous.spec):
        pytest.skip(method.skip_reason(contiguous.spec))
    x, target = images(2, size=SIZE), torch.tensor([1, 3])
    expected = method.attribute(contiguous, x, target)
    actual = method.attribute(channels_last, x, target)
    scale = float(expected.abs().max()) or 1.0
    share = 1e-2 if (arch, name) in ROUNDING_SENSITIVE else 1e-4
    torch.testing.assert_close(actual, expected, rtol=1e-3, atol=share * scale)
