"""The small registered models: shapes, activations fit for hooks, CAM structure, randomisation order, checkpoints."""

import pytest
import torch
from torch import nn

from salbench.models import (
    CheckpointError,
    build_model,
    list_models,
    load_checkpoint,
    randomisation_order,
    save_checkpoint,
    to_device,
)

ARCHS = ["small_cnn", "small_resnet"]


@pytest.fixture(params=ARCHS)
def model(request) -> nn.Module:
    return build_model(request.param, num_classes=6).eval()


def _owns_parameters(module: nn.Module) -> bool:
    return any(True for _ in module.parameters(recurse=False))


def test_registered():
    assert set(ARCHS) <= set(list_models())


def test_forward_shape(model):
    assert model(torch.rand(3, 3, 64, 64)).shape == (3, 6)


def test_every_relu_is_its_own_out_of_place_module_called_once(model):
    relus = [m for _, m in model.named_modules(remove_duplicate=False) if isinstance(m, nn.ReLU)]
    assert relus and len({id(m) for m in relus}) == len(relus)
    assert not any(m.inplace for m in relus)
    calls = {id(m): 0 for m in relus}
    hooks = [m.register_forward_hook(lambda mod, i, o: calls.__setitem__(id(mod), calls[id(mod)] + 1)) for m in relus]
    model(torch.rand(1, 3, 64, 64))
    for hook in hooks:
        hook.remove()
    assert set(calls.values()) == {1}


def _target_activation(model: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    seen = []
    hook = model.get_submodule(model.spec.target_layer).register_forward_hook(lambda m, i, o: seen.append(o))
    logits = model(x)
    hook.remove()
    return seen[0], logits


def test_target_layer_is_a_fine_enough_map_feeding_gap_and_fc(model):
    """CAM's premise: logits = fc(global average of the target layer's map)."""
    activation, logits = _target_activation(model, torch.rand(2, 3, 64, 64))
    assert activation.shape[-2] >= 4 and activation.shape[-1] >= 4
    assert model.spec.gap_fc
    torch.testing.assert_close(model.net.fc(activation.mean(dim=(2, 3))), logits)


def test_excitation_layer_is_one_stage_below_the_target_layer(model):
    """TorchRay reads excitation backprop one stage below Grad-CAM's layer (VGG16 pool4, ResNet50 layer3)."""
    seen = {}
    names = [model.spec.layer("excitation_layer"), model.spec.target_layer]
    hooks = [model.get_submodule(n).register_forward_hook(lambda m, i, o, n=n: seen.setdefault(n, o)) for n in names]
    model(torch.rand(1, 3, 64, 64))
    for hook in hooks:
        hook.remove()
    assert names[0] != names[1] and list(seen) == names  # it runs before the target layer
    assert seen[names[0]].dim() == 4 and seen[names[0]].shape[-1] >= seen[names[1]].shape[-1]
    assert model.spec.layer("no_such_role") == model.spec.target_layer


def test_randomisation_order_is_top_down_and_complete(model):
    order = randomisation_order(model)
    owners = {name for name, m in model.named_modules() if _owns_parameters(m)}
    assert set(order) == owners and len(order) == len(owners)
    params = {id(p) for name in order for p in model.get_submodule(name).parameters(recurse=False)}
    assert params == {id(p) for p in model.parameters()}
    assert isinstance(model.get_submodule(order[0]), nn.Linear)
    assert isinstance(model.get_submodule(order[-1]), nn.Conv2d)
    called = []
    hooks = [model.get_submodule(n).register_forward_hook(lambda m, i, o, n=n: called.append(n)) for n in order]
    model(torch.rand(1, 3, 64, 64))
    for hook in hooks:
        hook.remove()
    assert order == called[::-1], "logits first, first convolution last, in forward order reversed"


def test_checkpoint_round_trip_gives_identical_logits(model, tmp_path):
    x = torch.rand(2, 3, 64, 64)
    path = tmp_path / "model.pt"
    sha = save_checkpoint(model, path, {"num_classes": 6, "seed": 0})
    loaded = load_checkpoint(path)
    assert len(sha) == 64 and not loaded.training and loaded.meta["seed"] == 0
    torch.testing.assert_close(loaded(x), to_device(model, "cpu")(x), rtol=0, atol=0)  # in the same CPU layout


def test_corrupted_checkpoint_names_the_file(model, tmp_path):
    path = tmp_path / "broken.pt"
    save_checkpoint(model, path, {"num_classes": 6})
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(CheckpointError, match="broken.pt"):
        load_checkpoint(path)
