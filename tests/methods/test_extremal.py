"""Extremal perturbation: meets its area constraint, localises on a quadrant model, blur pyramid is ordered."""

from __future__ import annotations

import pytest
import torch

from salbench.methods import create_method
from salbench.methods.extremal import blur_pyramid, gaussian_blur, perturb
from salbench.params import ParamError

from .helpers import SIZE, images, quadrant_model
from .threads import one_thread  # noqa: F401  (fixture)

#: a 16 px image needs a finer grid and less blur than TorchRay's 224 px defaults
SMALL = {"step": 2, "sigma": 3.0, "max_blur": 4.0, "jitter": False, "lr": 0.1}

pytestmark = pytest.mark.usefixtures("one_thread")


def confident_quadrant_model():
    model = quadrant_model()
    with torch.no_grad():
        model.net.fc.weight.mul_(100)
    return model


def test_extremal_masks_meet_their_area_constraint():
    model, x = confident_quadrant_model(), images(2)
    areas = [0.1, 0.25]
    method = create_method("extremal_perturbation", areas=areas, max_iter=100, **SMALL)
    masks = method.masks(model, x, model(x).argmax(1))
    assert masks.shape == (2, 2, SIZE, SIZE) and masks.min() >= 0 and masks.max() <= 1
    kept = (masks > 0.5).flatten(2).float().mean(2)
    torch.testing.assert_close(kept, torch.tensor(areas)[:, None].expand(2, 2), rtol=0, atol=0.03)


def test_extremal_masks_keep_the_quadrant_the_model_sees():
    model, x = confident_quadrant_model(), images(2)
    method = create_method("extremal_perturbation", areas=[0.1, 0.25], max_iter=100, regul_weight=10.0,
                           regul_growth=1.03, **SMALL)
    maps = method.attribute(model, x, model(x).argmax(1))
    share = maps[:, : SIZE // 2, : SIZE // 2].flatten(1).sum(1) / maps.flatten(1).sum(1)
    assert (share > 0.55).all()  # the quadrant is a quarter of the image


def test_blur_pyramid_runs_from_most_blurred_to_the_input_and_perturb_interpolates():
    x = images(1)
    pyramid = blur_pyramid(x, 3, 2.0)
    torch.testing.assert_close(pyramid[:, 2], x)
    torch.testing.assert_close(pyramid[:, 0], gaussian_blur(x, 2.0))
    assert pyramid[:, 0].std() < pyramid[:, 1].std() < x.std()
    half = perturb(pyramid, torch.full((1, 1, SIZE, SIZE), 0.25))
    torch.testing.assert_close(half, 0.5 * (pyramid[:, 0] + pyramid[:, 1]))
    torch.testing.assert_close(perturb(pyramid, torch.ones(1, 1, SIZE, SIZE)), x)


def test_extremal_checks_its_areas():
    with pytest.raises(ParamError, match="areas"):
        create_method("extremal_perturbation", areas=[0.0])
