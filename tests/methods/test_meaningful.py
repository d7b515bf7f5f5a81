"""Meaningful perturbation: deletes the quadrant the model sees; total variation by hand."""

from __future__ import annotations

import pytest
import torch

from salbench.methods import create_method
from salbench.methods.meaningful import total_variation

from .helpers import SIZE, images, quadrant_model
from .threads import one_thread  # noqa: F401  (fixture)

pytestmark = pytest.mark.usefixtures("one_thread")


def test_meaningful_perturbation_deletes_the_quadrant_the_model_sees():
    model = quadrant_model()
    with torch.no_grad():
        model.net.fc.weight.mul_(10)
    x = images(3)
    method = create_method("meaningful_perturbation", mask_size=8, max_iter=100, sigma=3.0, jitter=1, l1=1e-2)
    maps = method.attribute(model, x, model(x).argmax(1))
    assert maps.min() >= 0 and maps.max() <= 1
    share = maps[:, : SIZE // 2, : SIZE // 2].flatten(1).sum(1) / maps.flatten(1).sum(1)
    assert (share > 0.8).all()


def test_total_variation_by_hand():
    mask = torch.tensor([[0.0, 1.0], [0.5, 0.5]]).view(1, 1, 2, 2)
    # vertical: |0.5 - 0|^3 + |0.5 - 1|^3 = 0.25; horizontal: 1^3 + 0 = 1
    torch.testing.assert_close(total_variation(mask, 3.0), torch.tensor([1.25]))
