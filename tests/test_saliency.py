"""compute_maps: batches a method over a set of images and returns CPU float32 maps."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from salbench.methods import create_method
from salbench.saliency import compute_maps


def small_model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 3)
    ).eval()


@pytest.mark.parametrize("name", ["gradient", "random"])
def test_batched_maps_equal_one_call(name):
    model, images, targets = small_model(), torch.rand(5, 3, 8, 8, dtype=torch.float64), torch.tensor([0, 1, 2, 0, 1])
    method = create_method(name)
    maps = compute_maps(method, model.double(), images, targets, batch_size=2, progress=False)
    assert maps.shape == (5, 8, 8) and maps.dtype == torch.float32 and maps.device.type == "cpu"
    torch.testing.assert_close(maps, method.attribute(model, images, targets), rtol=1e-6, atol=1e-7)


def test_progress_bar_goes_to_stderr(capsys):
    compute_maps(create_method("centre"), None, torch.rand(3, 3, 8, 8), torch.zeros(3, dtype=torch.long), batch_size=2)
    captured = capsys.readouterr()
    assert "centre" in captured.err and captured.out == ""


def test_no_items_give_an_empty_stack():
    images, targets = torch.rand(0, 3, 8, 8), torch.zeros(0, dtype=torch.long)
    maps = compute_maps(create_method("sobel"), None, images, targets, batch_size=4, progress=False)
    assert maps.shape == (0, 8, 8) and maps.dtype == torch.float32


def test_uint8_images_are_scaled_per_batch_like_float_images():
    model = small_model()
    images = torch.randint(0, 256, (5, 3, 16, 16), dtype=torch.uint8)
    targets = torch.tensor([0, 1, 0, 1, 0])
    method = create_method("gradient")
    from_uint8 = compute_maps(method, model, images, targets, batch_size=2, progress=False, device="cpu")
    from_float = compute_maps(method, model, images.float() / 255, targets, batch_size=5, progress=False)
    torch.testing.assert_close(from_uint8, from_float)
