"""MDM: the loss falls, the fused map lands in the quadrant the model sees, parameters are checked."""

from __future__ import annotations

import pytest
import torch

from salbench.methods import create_method
from salbench.methods.mdm import fit_masks, fuse_scales
from salbench.params import ParamError

from .helpers import SIZE, images, quadrant_model
from .threads import one_thread  # noqa: F401  (fixture)

pytestmark = pytest.mark.usefixtures("one_thread")


def test_mdm_loss_falls_and_the_fused_map_lands_in_the_seen_quadrant():
    model = quadrant_model()
    with torch.no_grad():
        model.net.fc.weight.mul_(100)  # logits that move well beyond the L1 term's pull
    x = images(3)
    target = model(x).argmax(1)
    method = create_method("mdm", scales=[2, 4, 8], min_count=2, lr=0.05, max_iter=40)
    x_norm = (x - model.mean) / model.std
    masks, history = fit_masks(model.net, x_norm, target, [2, 4, 8], method.params)
    assert len(history) == 40 and history[-1] < 0.5 * history[0]
    assert [tuple(m.shape) for m in masks] == [(3, 1, s, s) for s in (2, 4, 8)]  # true s x s masks
    maps = fuse_scales(masks, (SIZE, SIZE), 1.0, 2)
    assert maps.min() == 0 and maps.max() == 1
    share = maps[:, : SIZE // 2, : SIZE // 2].flatten(1).sum(1) / maps.flatten(1).sum(1)
    assert (share > 0.6).all()  # the quadrant is a quarter of the image
    torch.testing.assert_close(method.attribute(model, x, target), maps)


def test_mdm_stops_early_per_pair_and_keeps_that_iterate():
    model, x = quadrant_model(), images(2)
    x_norm = (x - model.mean) / model.std
    params = dict(create_method("mdm").params, lr=0.5, max_iter=60, patience=0, min_iter=0)
    masks, history = fit_masks(model.net, x_norm, torch.tensor([0, 1]), [2], params)
    assert len(history) < 60  # the large step overshoots, so every pair stops early


def test_mdm_checks_its_parameters():
    with pytest.raises(ParamError, match="min_count"):
        create_method("mdm", scales=[2, 3], min_count=5)
    with pytest.raises(ParamError, match="scales"):
        create_method("mdm", scales=[0, 2])
    assert create_method("mdm").params["scales"] == [*range(6, 26), 27, 29, 30, 32]


def test_fusion_by_hand():
    mask = torch.tensor([[0.0, 1.0], [2.0, 3.0]]).view(1, 1, 2, 2)
    u = torch.nn.functional.interpolate(mask, size=(SIZE, SIZE), mode="bilinear", align_corners=True)[:, 0] / 3
    # percentile 0 keeps every pixel: minmax(2 u - 2) = u
    torch.testing.assert_close(fuse_scales([mask, 2 * mask], (SIZE, SIZE), 0.0, 2), u)
    # percentile 1 drops the pixels below it (u = 0 corner region) to the floor, the rest stay ordered
    fused = fuse_scales([mask, 2 * mask], (SIZE, SIZE), 1.0, 2)
    threshold = torch.quantile(u.flatten(), 0.01)
    expected = torch.where(u >= threshold, 2 * u, torch.zeros_like(u)) - 2
    torch.testing.assert_close(fused, (expected - expected.min()) / (expected.max() - expected.min()))
