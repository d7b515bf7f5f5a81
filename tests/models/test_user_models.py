"""User models (config ``arch: user``): a torchvision name + state-dict file and a TorchScript file the test
creates, fetched into ordinary checkpoints and run through the saliency job; config errors name the key."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from salbench.config import ConfigError, read_config_file, validate_config
from salbench.jobs import build_method, fetch_dataset, prepare_dataset, saliency
from salbench.model_config import is_fetched
from salbench.models import load_checkpoint
from salbench.models.user import UserModelError, fetch_model
from salbench.store import open_store

TINY = Path(__file__).parents[1] / "workflow" / "config_tiny.yaml"
SHAPES = {"image_size": 32, "n_train": 0, "n_val": 0, "n_eval": 4, "seed": 0}
MEAN, STD = [0.5, 0.4, 0.3], [0.2, 0.25, 0.3]


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("shapes")
    fetch_dataset("shapes", SHAPES, root / "raw")
    prepare_dataset("shapes", "shapes", SHAPES, root / "raw", root / "data.zarr")
    return root / "data.zarr"


def _entry(**fields) -> dict:
    return {"arch": "user", "input_size": 32, "mean": MEAN, "std": STD, "num_classes": 6, **fields}


def _input_gradients(net: nn.Module, store: Path) -> np.ndarray:
    """d logit_target / d pixel, summed over channels with abs (the gradient method's default), by hand."""
    data = open_store(store)
    x = (torch.from_numpy(data["image"].values).float() / 255).requires_grad_()
    z = (x - torch.tensor(MEAN).view(1, 3, 1, 1)) / torch.tensor(STD).view(1, 3, 1, 1)
    logits = net(z)
    logits.gather(1, torch.from_numpy(data["target"].values).view(-1, 1)).sum().backward()
    return x.grad.abs().amax(dim=1).numpy()


def _run(store: Path, checkpoint: Path, out: Path, method: str = "gradient") -> np.ndarray:
    saliency("shapes", "mine", method, method, {}, store, checkpoint, 0, "cpu", 4, out)
    return open_store(out)["saliency"].values


def test_torchvision_name_and_state_dict(tmp_path, store):
    from torchvision.models import resnet18

    torch.manual_seed(0)
    net = resnet18(num_classes=6).eval()
    weights = tmp_path / "weights.pth"  # a training script's wrapper with DataParallel's key prefix
    torch.save({"epoch": 3, "state_dict": {f"module.{k}": v for k, v in net.state_dict().items()}}, weights)
    entry = _entry(source="torchvision", name="resnet18", checkpoint=str(weights), target_layer="net.layer4",
                   gap_fc=True)
    fetch_model("mine", entry, tmp_path / "mine.pt", progress=False)
    model = load_checkpoint(tmp_path / "mine.pt")
    assert model.spec.arch == "user" and model.spec.input_size == 32 and model.spec.gap_fc
    assert build_method("gradcam", "gradcam", {}, model, "mine").params["layer"] == "net.layer4"

    maps = _run(store, tmp_path / "mine.pt", tmp_path / "gradient.zarr")
    method = build_method("gradient", "gradient", {}, model, "mine")
    if method.params.get("channel_reduction") == "max_abs":
        np.testing.assert_allclose(maps, _input_gradients(net, store), rtol=1e-4, atol=1e-6)
    assert _run(store, tmp_path / "mine.pt", tmp_path / "gradcam.zarr", "gradcam").shape == (4, 32, 32)


class Tiny(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.fc = nn.Linear(8, 6)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.relu(self.conv(x)).mean(dim=(2, 3)))


def test_torchscript_file(tmp_path, store):
    torch.manual_seed(0)
    net = Tiny().eval()
    torch.jit.script(net).save(str(tmp_path / "tiny.ts"))
    fetch_model("mine", _entry(source="torchscript", checkpoint=str(tmp_path / "tiny.ts")), tmp_path / "mine.pt")
    (tmp_path / "tiny.ts").unlink()  # the checkpoint holds the model: the original file is no longer needed
    model = load_checkpoint(tmp_path / "mine.pt")
    assert isinstance(model.net, torch.jit.ScriptModule)
    maps = _run(store, tmp_path / "mine.pt", tmp_path / "gradient.zarr")
    assert maps.shape == (4, 32, 32) and np.isfinite(maps).all() and maps.max() > 0
    if build_method("gradient", "gradient", {}, model, "mine").params.get("channel_reduction") == "max_abs":
        np.testing.assert_allclose(maps, _input_gradients(net, store), rtol=1e-4, atol=1e-6)
    with pytest.raises(ValueError, match="gradcam.*TorchScript model cannot take the module hooks"):
        build_method("gradcam", "gradcam", {}, model, "mine")


def test_user_model_errors_name_the_key(tmp_path):
    with pytest.raises(UserModelError, match=r"'models.mine.checkpoint': .*nowhere.pth does not exist; put"):
        fetch_model("mine", _entry(source="torchvision", name="resnet18", checkpoint=str(tmp_path / "nowhere.pth")),
                    tmp_path / "x.pt")
    torch.jit.script(Tiny()).save(str(tmp_path / "tiny.ts"))
    with pytest.raises(UserModelError, match=r"'models.mine.num_classes': 10, but the model gives logits of shape"):
        fetch_model("mine", _entry(source="torchscript", checkpoint=str(tmp_path / "tiny.ts"), num_classes=10),
                    tmp_path / "x.pt")
    torch.save(Tiny().state_dict(), tmp_path / "tiny.pth")
    with pytest.raises(UserModelError, match=r"'models.mine.checkpoint': .*tiny.pth cannot be loaded as a torchvision "
                                             r"resnet18 \(RuntimeError"):
        fetch_model("mine", _entry(source="torchvision", name="resnet18", checkpoint=str(tmp_path / "tiny.pth")),
                    tmp_path / "x.pt")
    assert not (tmp_path / "x.pt").exists()


def _config(**models) -> dict:
    config = read_config_file(TINY)
    config["models"] = models
    return config


def test_config_accepts_pretrained_and_user_models():
    config = validate_config(_config(
        vgg={"arch": "tv_vgg16", "pretrained": "imagenet"},
        mine=_entry(source="timm", name="resnet18", checkpoint="weights.pth"),
        scripted=_entry(source="torchscript", checkpoint="model.ts"),
    ))
    assert all(is_fetched(entry) for entry in config["models"].values())


@pytest.mark.parametrize("entry, key", [
    ({"arch": "small_cnn", "pretrained": "imagenet"}, "'models.m.pretrained': architecture 'small_cnn' has no"),
    ({"arch": "tv_vgg16", "pretrained": "cifar"}, "'models.m.pretrained'"),
    ({"arch": "small_cnn", "checkpoint": "w.pth"}, "'models.m.checkpoint' applies only with arch: user"),
    ({k: v for k, v in _entry(source="torchvision", name="resnet18", checkpoint="w").items() if k != "mean"},
     "'models.m.mean' is required with arch: user"),
    (_entry(source="torchvision", checkpoint="w"), "'models.m.name' is required with source: torchvision"),
    (_entry(source="torchscript", name="x", checkpoint="w"), "'models.m.name' does not apply to source: torchscript"),
    (_entry(source="onnx", checkpoint="w"), "'models.m.source'"),
    (_entry(source="timm", name="resnet18", checkpoint="w", std=[0.2, 0.0, 0.2]), "'models.m.std'"),
    (_entry(source="timm", name="resnet18", checkpoint="w", mean=[0.5]), "'models.m.mean'"),
    ({**_entry(source="timm", name="resnet18", checkpoint="w"), "pretrained": "imagenet"}, "'models.m.pretrained'"),
])
def test_config_errors_name_the_key(entry, key):
    with pytest.raises(ConfigError, match=key):
        validate_config(_config(m=entry))
