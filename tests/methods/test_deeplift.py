"""DeepLIFT: equals captum's DeepLift, sums to the logit difference, works on a torchvision ResNet."""

from __future__ import annotations

import pytest
import torch
import torchvision
from captum.attr import DeepLift

from salbench.methods import create_method
from salbench.methods.baselines import make_baseline
from salbench.models.base import NormalizedClassifier

from .helpers import SPEC, images, tiny_model


@pytest.mark.parametrize("baseline", ["black", "zero_normalised", "blur", "uniform"])
def test_deeplift_equals_captum(baseline):
    model, x, target = tiny_model(), images(3), torch.tensor([0, 3, 2])
    reference = make_baseline(baseline, model, x, 0, 5.0)
    expected = DeepLift(model).attribute(x.clone().requires_grad_(), baselines=reference, target=target).detach()
    channels = create_method("deeplift", baseline=baseline).attribute_channels(model, x, target)
    torch.testing.assert_close(channels, expected, rtol=0, atol=0)


def test_deeplift_sums_to_delta_on_a_torchvision_resnet_with_its_shared_relu():
    torch.manual_seed(0)
    model = NormalizedClassifier(torchvision.models.resnet18(weights=None, num_classes=4), SPEC).eval()
    x, target = images(2, size=32), torch.tensor([1, 3])
    with pytest.raises(RuntimeError):  # captum alone refuses the reused in-place ReLU
        DeepLift(model).attribute(x.clone().requires_grad_(), baselines=torch.zeros_like(x), target=target)
    # the zero of the normalised space: captum's max-pool rule conserves exactly when the reference's pooled
    # activations are trivial, and the reused ReLUs are what is under test here
    reference = make_baseline("zero_normalised", model, x, 0, 5.0)
    maps = create_method("deeplift", baseline="zero_normalised").attribute(model, x, target)
    with torch.no_grad():
        delta = model(x)[[0, 1], target] - model(reference)[[0, 1], target]
    torch.testing.assert_close(maps.sum((1, 2)), delta, rtol=1e-4, atol=1e-6)
    assert all(m.inplace for m in model.modules() if isinstance(m, torch.nn.ReLU))
