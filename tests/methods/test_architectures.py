"""The gradient and propagation family runs on the embedded default's models and the real architectures
(random weights, 32 px, batch 2) and leaves no trace."""

from __future__ import annotations

import functools

import pytest
import timm
import torch
import torchvision

from salbench.methods import METHODS
from salbench.models import build_model, list_models
from salbench.models.base import ModelSpec, NormalizedClassifier

from .helpers import small_archs
from .test_registry import assert_clean_run

pytestmark = pytest.mark.slow

SIZE = 32
IMAGENET = {"mean": (0.485, 0.456, 0.406), "std": (0.229, 0.224, 0.225)}
#: builder and Grad-CAM target layer (the last convolutional stage)
ARCHS = {
    "vgg16": (lambda: torchvision.models.vgg16(weights=None, num_classes=5), "net.features.29"),
    "resnet50": (lambda: torchvision.models.resnet50(weights=None, num_classes=5), "net.layer4"),
    "densenet121": (lambda: torchvision.models.densenet121(weights=None, num_classes=5), "net.features"),
    "timm_resnet50": (lambda: timm.create_model("resnet50", pretrained=False, num_classes=5), "net.layer4"),
}
#: the white-box gradient and propagation methods (issue 3), with Grad-CAM for the guided variant's sake
FAMILY = [
    "gradient", "input_x_gradient", "integrated_gradients", "expected_gradients", "smoothgrad", "smoothgrad_sq",
    "vargrad", "guided_backprop", "deconvnet", "guided_gradcam", "gradcam", "deeplift", "lrp_epsilon",
    "lrp_alpha1_beta0", "lrp_alpha2_beta1", "lrp_epsilon_plus_flat", "lrp_epsilon_gamma_box",
    "excitation_backprop", "contrastive_excitation_backprop",
]
#: sampling methods at reduced cost: the property under test is that they run, not their convergence
CHEAP = {"n_steps": 2, "n_samples": 2, "internal_batch_size": 3}


@functools.cache
def wrapped(arch: str) -> NormalizedClassifier:
    torch.manual_seed(0)
    if arch in list_models():
        return build_model(arch, 5).eval()
    build, layer = ARCHS[arch]
    return NormalizedClassifier(build(), ModelSpec(arch=arch, input_size=SIZE, target_layer=layer, **IMAGENET)).eval()


@pytest.mark.parametrize("name", FAMILY)
@pytest.mark.parametrize("arch", small_archs() + list(ARCHS))
def test_method_runs_on_architecture(arch, name):
    model = wrapped(arch)
    cls = METHODS.get(name)
    params = {key: value for key, value in CHEAP.items() if key in cls.defaults}
    reason = cls(**params).skip_reason(model.spec)
    if reason:  # e.g. propagation rules on a vision transformer: the workflow skips the job with this reason
        pytest.skip(reason)
    size = model.spec.input_size if model.spec.family == "vit" else SIZE  # a ViT's patch grid fixes its input
    assert_clean_run(cls, params, model, size)
