"""MDM: the loss falls, the fused map lands in the quadrant the model sees, parameters are checked, and the
released code's rules (ytpeng-tongji/MultipleDynamicMasks) hold: its 26 fused scales, its per-pair loop."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

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


def test_mdm_defaults_to_the_26_scales_of_the_released_fusion_script():
    # generate_mask_traditional_networks.py, base_mask_size_list (= analysis_settings.base_mask_size_list_)
    released = [6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 27, 29, 30, 32, 56, 112]
    assert create_method("mdm").params["scales"] == released


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


def constant_logit_net() -> nn.Module:
    """Logits (1, 2) whatever the input: only the L1 term moves the masks (its gradient is +1/s^2 at 0.5)."""
    net = nn.Sequential(nn.Flatten(), nn.Linear(3 * SIZE * SIZE, 2))
    with torch.no_grad():
        net[1].weight.zero_()
        net[1].bias.copy_(torch.tensor([1.0, 2.0]))
    return net


def test_mdm_checks_the_stop_rule_before_the_iteration_as_released():
    # Released loop: `if epoch - best_epoch > patient and epoch > iteration_epoch_min: break` runs before the
    # loss of `epoch`. With patience 0 and min_iter 0, epoch 0 sets best_epoch 0 and epoch 1 stops: the kept
    # mask is the one after a single Adam step, 0.5 - lr (Adam's first step is lr * g / |g|). Checking after
    # the loss (the old order) runs on while the L1 term keeps falling (0.5, 0.4, ...).
    params = dict(create_method("mdm").params, lr=0.1, max_iter=50, patience=0, min_iter=0)
    masks, history = fit_masks(constant_logit_net(), images(2), torch.tensor([0, 1]), [2, 3], params)
    assert len(history) == 1
    for mask in masks:
        torch.testing.assert_close(mask, torch.full_like(mask, 0.4))


def released_loop(net: nn.Module, x: torch.Tensor, c: int, s: int, params: dict) -> torch.Tensor:
    """tran_nn_dmask_rgb.py's loop for one image and one scale, restated plainly: ``[1,s,s]`` final mask."""
    with torch.no_grad():
        clean = net(x[None])[0, c]
    mask = torch.full((1, s, s), 0.5, dtype=x.dtype, requires_grad=True)
    optimiser = torch.optim.Adam([mask], lr=params["lr"])
    best_loss, best_epoch = 1e8, -1
    for epoch in range(params["max_iter"]):
        if epoch - best_epoch > params["patience"] and epoch > params["min_iter"]:
            break
        up = F.interpolate(mask[None], size=tuple(x.shape[-2:]), mode="bilinear", align_corners=True)
        mse = (net(up * x)[0, c] - clean) ** 2
        loss = params["loss_weight"] * mse + mask.abs().sum() / (s * s)
        if loss.item() < best_loss:
            best_epoch, best_loss = epoch, loss.item()
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    return mask.detach()


def test_mdm_masks_equal_the_released_per_pair_loop():
    model = quadrant_model().double()  # double: the stop decisions compare losses exactly
    with torch.no_grad():
        model.net.fc.weight.mul_(100)
    x_norm = (images(2).double() - model.mean) / model.std
    target = torch.tensor([0, 2])
    scales = [2, 3, 5]
    params = dict(create_method("mdm").params, loss_weight=1.0, lr=0.05, max_iter=40, patience=2, min_iter=3)
    masks, history = fit_masks(model.net, x_norm, target, scales, dict(params, max_batch=4))  # 6 rows, 2 chunks
    assert len(history) == 14  # the pairs stop at iterations 13 and 14, each keeping its own iterate
    for mask, s in zip(masks, scales):
        for b in range(2):
            torch.testing.assert_close(mask[b], released_loop(model.net, x_norm[b], int(target[b]), s, params))
