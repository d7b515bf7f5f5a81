"""Grad-CAM: equals captum's LayerGradCam + upsampling, agrees with pytorch_grad_cam, localises."""

from __future__ import annotations

import copy

import pytest
import torch
from captum.attr import LayerGradCam
from pytorch_grad_cam import GradCAM as ReferenceGradCAM
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
from scipy.stats import spearmanr

from salbench.methods import create_method
from salbench.methods.postprocess import upsample
from salbench.params import ParamError

from .helpers import SIZE, images, quadrant_model, tiny_model


def reference_cams(model, layer: str, x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """pytorch_grad_cam's maps (min-max normalised per item, resized to the input) on a copy of the model."""
    model = copy.deepcopy(model)
    targets = [ClassifierOutputTarget(int(t)) for t in target]
    with ReferenceGradCAM(model=model, target_layers=[model.get_submodule(layer)]) as cam:
        return torch.from_numpy(cam(input_tensor=x.clone(), targets=targets))


def minmax(maps: torch.Tensor) -> torch.Tensor:
    flat = maps.flatten(1)
    lo, hi = flat.min(1, keepdim=True).values, flat.max(1, keepdim=True).values
    return ((flat - lo) / (hi - lo)).view_as(maps)


@pytest.mark.parametrize("mode", ["bilinear", "nearest", "bicubic"])
def test_gradcam_equals_captum_layer_gradcam_then_upsample(mode):
    model, x, target = tiny_model(), images(3), torch.tensor([0, 1, 2])
    layer = model.get_submodule("net.relu3")
    cams = LayerGradCam(model, layer).attribute(x, target=target, relu_attributions=True)
    assert cams.shape == (3, 1, SIZE // 2, SIZE // 2)
    expected = upsample(cams.squeeze(1), (SIZE, SIZE), mode)
    maps = create_method("gradcam", layer="net.relu3", upsample=mode).attribute(model, x, target)
    torch.testing.assert_close(maps, expected.detach(), rtol=0, atol=0)


def test_gradcam_agrees_with_pytorch_grad_cam_at_layer_resolution():
    """At a full-resolution layer nothing is resized: maps agree after per-item min-max normalisation."""
    model, x, target = tiny_model(), images(4), torch.tensor([3, 0, 2, 3])
    maps = create_method("gradcam", layer="net.relu2").attribute(model, x, target)
    assert (maps.flatten(1).amax(1) > 0).all()
    torch.testing.assert_close(minmax(maps), reference_cams(model, "net.relu2", x, target), rtol=0, atol=1e-5)


def test_gradcam_rank_agrees_with_pytorch_grad_cam_after_upsampling():
    model, x, target = tiny_model(), images(4), torch.tensor([3, 0, 2, 3])
    maps = create_method("gradcam", layer="net.relu3").attribute(model, x, target)
    reference = reference_cams(model, "net.relu3", x, target)
    for ours, theirs in zip(maps, reference):
        assert spearmanr(ours.flatten(), theirs.flatten()).statistic > 0.99


def test_gradcam_peaks_in_the_only_quadrant_the_model_sees():
    model, x = quadrant_model(), images(3)
    maps = create_method("gradcam", layer="net.relu").attribute(model, x, torch.tensor([0, 1, 2]))
    half = SIZE // 2
    seen = torch.zeros(SIZE, SIZE, dtype=torch.bool)
    seen[: half + 1, : half + 1] = True  # the quadrant plus the 3x3 conv's one-pixel reach
    assert (maps[:, ~seen] == 0).all()
    assert (maps.flatten(1).amax(1) > 0).all()
    peaks = maps.flatten(1).argmax(1)
    assert ((peaks // SIZE < half + 1) & (peaks % SIZE < half + 1)).all()


def test_gradcam_needs_a_valid_layer():
    model, x, target = tiny_model(), images(1), torch.tensor([0])
    with pytest.raises(ParamError, match="needs a layer"):
        create_method("gradcam").attribute(model, x, target)
    with pytest.raises(ParamError, match="no layer 'net.conv9'"):
        create_method("gradcam", layer="net.conv9").attribute(model, x, target)
    with pytest.raises(ValueError, match="upsample"):
        create_method("gradcam", upsample="area")
