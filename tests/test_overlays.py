"""``salbench explain``: overlay PNGs for image files the test writes, from a checkpoint or a TorchScript file."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from salbench.cli import main
from salbench.overlays import load_images, overlay
from salbench.models import build_model, save_checkpoint


@pytest.fixture
def images(tmp_path):
    rng = np.random.default_rng(0)
    paths = []
    for name, (h, w) in (("cat.png", (40, 50)), ("dog.jpg", (80, 80))):
        path = tmp_path / "in" / name
        path.parent.mkdir(exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(path)
        paths.append(path)
    return paths


def test_overlay_hand_worked():
    image = np.full((1, 3, 3), 0.5)
    signed = overlay(image, np.array([[-2.0, 0.0, 2.0]]), alpha=1.0)  # full colour: the colour map itself
    assert signed[0, 0, 2] > signed[0, 0, 0] and signed[0, 2, 0] > signed[0, 2, 2]  # blue negative, red positive
    assert np.abs(signed[0, 1].astype(int) - signed[0, 1].mean()).max() < 16  # zero: near-white grey
    plain = overlay(image, np.array([[0.0, 1.0, 4.0]]), alpha=0.0)  # no colour: the image
    assert (plain == 128).all()
    half = overlay(image, np.array([[0.0, 0.0, 4.0]]), alpha=0.5).astype(int)
    assert half[0, 2].sum() > half[0, 0].sum()  # the maximum is brighter on the sequential map


def test_explain_checkpoint_writes_overlays(tmp_path, images):
    torch.manual_seed(0)
    save_checkpoint(build_model("small_cnn", 6).eval(), tmp_path / "cnn.pt", {"num_classes": 6})
    out = tmp_path / "out"
    for method in ("gradient", "gradcam"):
        assert main(["explain", "--model", str(tmp_path / "cnn.pt"), "--method", method, *map(str, images),
                     "--out", str(out), "--device", "cpu"]) == 0
    written = sorted(p.name for p in out.iterdir())
    assert written == ["cat.gradcam.png", "cat.gradient.png", "dog.gradcam.png", "dog.gradient.png"]
    resized = (load_images(images, 64).permute(0, 2, 3, 1).numpy() * 255).round().astype(np.uint8)
    for k, stem in enumerate(("cat", "dog")):
        panel = np.asarray(Image.open(out / f"{stem}.gradient.png"))
        assert panel.shape == (64, 128, 3)
        np.testing.assert_array_equal(panel[:, :64], resized[k])  # left: the image as the model saw it
        assert (panel[:, 64:] != panel[:, :64]).any()  # right: the map blended in


class Tiny(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.fc = nn.Linear(4, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.relu(self.conv(x)).mean(dim=(2, 3)))


def test_explain_torchscript_and_errors(tmp_path, images, capsys):
    torch.manual_seed(0)
    torch.jit.script(Tiny().eval()).save(str(tmp_path / "tiny.ts"))
    common = ["--model", str(tmp_path / "tiny.ts"), "--input-size", "24", "--mean", "0.5", "0.5", "0.5", "--std",
              "0.2", "0.2", "0.2", "--out", str(tmp_path / "out"), "--device", "cpu", str(images[0])]
    assert main(["explain", "--method", "gradient", "--target", "2", *common]) == 0
    assert np.asarray(Image.open(tmp_path / "out" / "cat.gradient.png")).shape == (24, 48, 3)
    assert main(["explain", "--method", "gradient", "--target", "3", *common]) == 2
    assert "--target 3: the model has classes 0..2" in capsys.readouterr().err
    assert main(["explain", "--method", "gradcam", *common]) == 2  # a layer method on TorchScript: the reason
    assert "TorchScript model cannot take the module hooks" in capsys.readouterr().err
    image = str(images[0])  # the images are checked first (before a model is loaded)
    assert main(["explain", "--model", "no_such_model", "--method", "gradient", "--out", str(tmp_path), image]) == 2
    assert "neither a file nor a registered architecture" in capsys.readouterr().err
    assert main(["explain", "--model", "small_cnn", "--method", "gradient", "--out", str(tmp_path), image]) == 2
    assert "'small_cnn' has no published weights" in capsys.readouterr().err
