"""MDM: Multiple Dynamic Masks (Peng, Yang, Liu & He 2022, arXiv:2207.08046).

One learnable ``s x s`` mask per scale, optimised to keep the target logit while being as small as
possible, then the scales are fused. Follows the authors' released code
``github.com/ytpeng-tongji/MultipleDynamicMasks``: the mask module ``dynamic_maskpair.py``, the
optimisation loop of ``tran_nn_dmask_rgb.py`` (settings from ``analysis_settings.py``) and the fusion
``generate_mask_traditional_networks.py`` (its 26 scales). Deliberate differences (docs/fidelity.md): the
released ResNet/DenseNet script always builds 10 x 10 masks (it passes the size under a name the mask module
ignores) and only changes the ``s^2`` normaliser, here every scale has a true ``s x s`` mask as the paper
describes; the fusion works on the float masks, not on 8-bit PNGs written and re-read between two scripts.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..params import ParamError
from ..stats import min_max
from .base import Method, check_number, normalisation, register_method

#: the 26 scales the released fusion script ``generate_mask_traditional_networks.py`` (and
#: ``analysis_settings.base_mask_size_list_``) fuses: 6..25, 27, 29, 30, 32, 56, 112. The scales are mask sizes
#: in cells, independent of the input size (the authors' inputs are 224 px); a scale above the input size is
#: resampled down by the bilinear upsampling and acts as a pixel-level mask.
RELEASED_SCALES = [*range(6, 26), 27, 29, 30, 32, 56, 112]

#: the released loop's initial best loss and best iteration (``analysis_settings.best_loss_``, ``best_epoch_``)
INITIAL_BEST_LOSS, INITIAL_BEST_IT = 1e8, -1


def upsample_masks(masks: list[torch.Tensor], size: tuple[int, int]) -> torch.Tensor:
    """``[S,B,1,H,W]``: each ``[B,1,s,s]`` mask resized bilinearly with ``align_corners=True`` (as released)."""
    return torch.stack([F.interpolate(m, size=size, mode="bilinear", align_corners=True) for m in masks])


def fuse_scales(masks: list[torch.Tensor], size: tuple[int, int], percentile: float, min_count: int) -> torch.Tensor:
    """The released fusion: ``minmax(sum_s u_s * 1[count >= min_count] - min_count)``, ``[B,H,W]``.

    ``u_s`` = min-max of the upsampled mask of scale s; ``count`` = number of scales where
    ``u_s >= percentile_p(u_s)`` (p = 1 keeps about 99 % of pixels). The constant subtracted is the
    released code's 5, tied here to ``min_count`` (5 in the paper).
    """
    u = min_max(upsample_masks(masks, size).squeeze(2), axis=(-2, -1))  # [S,B,H,W]
    thresholds = torch.quantile(u.flatten(2), percentile / 100, dim=2)[:, :, None, None]
    count = (u >= thresholds).sum(dim=0)
    fused = u.sum(dim=0) * (count >= min_count) - min_count
    return min_max(fused, axis=(-2, -1))


def fit_masks(
    net: nn.Module,
    x_norm: torch.Tensor,
    target: torch.Tensor,
    scales: list[int],
    params: dict[str, Any],
) -> tuple[list[torch.Tensor], list[float]]:
    """Optimise one mask per (scale, item) jointly; returns the kept masks and the total loss per iteration.

    Loss per (scale s, item b): ``weight * (f_c(M_s * x) - f_c(x))^2 + ||m_s||_1 / s^2`` on the normalised
    input. One Adam over all scales' ``[B,1,s,s]`` tensors; the summed loss keeps (scale, item) pairs
    independent (Adam is element-wise), so each pair follows the released per-pair loop. Early stopping
    per (scale, item), in the released order: at the top of iteration ``it``, before its loss is computed, a
    pair stops when ``it - best_it > patience`` and ``it > min_iter``, with ``best_it`` the iteration of the
    lowest loss among iterations ``< it`` (initially loss 1e8 at iteration -1); it keeps its current iterate
    (the last one, not the best). The loop ends when all pairs stopped or after ``max_iter`` iterations
    (``max_iter`` steps). Rows go through the net ``max_batch`` at a time, gradients accumulated.
    """
    b, size = x_norm.shape[0], tuple(x_norm.shape[-2:])
    with torch.no_grad():
        clean = net(x_norm).gather(1, target.view(-1, 1)).squeeze(1)
    masks = [x_norm.new_full((b, 1, s, s), 0.5).requires_grad_() for s in scales]
    optimiser = torch.optim.Adam(masks, lr=params["lr"])
    norms = torch.tensor([float(s * s) for s in scales], device=x_norm.device, dtype=x_norm.dtype)
    kept = [m.detach().clone() for m in masks]
    best = torch.full((len(scales), b), INITIAL_BEST_LOSS, device=x_norm.device, dtype=x_norm.dtype)
    best_it = torch.full((len(scales), b), INITIAL_BEST_IT, dtype=torch.long, device=x_norm.device)
    stopped = torch.zeros(len(scales), b, dtype=torch.bool, device=x_norm.device)
    rows_target = target.repeat(len(scales))
    rows_clean = clean.repeat(len(scales))
    step = params["max_batch"]
    history: list[float] = []
    for it in range(params["max_iter"]):
        newly = ~stopped & (it - best_it > params["patience"]) & (it > params["min_iter"])
        for i, m in enumerate(masks):
            kept[i][newly[i]] = m.detach()[newly[i]]
        stopped |= newly
        if bool(stopped.all()):
            return kept, history
        with torch.enable_grad():
            up = upsample_masks(masks, size)  # [S,B,1,H,W]
            rows = (up * x_norm.unsqueeze(0)).flatten(0, 1)
            area = torch.stack([m.abs().sum(dim=(1, 2, 3)) for m in masks]) / norms[:, None]  # [S,B]
            grads = [torch.zeros_like(m) for m in masks]
            fidelity = []
            for start in range(0, rows.shape[0], step):
                scores = net(rows[start : start + step]).gather(1, rows_target[start : start + step].view(-1, 1))
                fid = params["loss_weight"] * (scores.squeeze(1) - rows_clean[start : start + step]).pow(2)
                fidelity.append(fid.detach())
                part = fid.sum() + (area.sum() if start == 0 else 0)
                for g, d in zip(grads, torch.autograd.grad(part, masks, retain_graph=True)):
                    g += d
        loss = torch.cat(fidelity).view(len(scales), b) + area.detach()  # compared in the input dtype
        history.append(float(loss.sum()))
        improved = loss < best
        best = torch.where(improved, loss, best)
        best_it = torch.where(improved, torch.full_like(best_it, it), best_it)
        for m, g in zip(masks, grads):
            m.grad = g
        optimiser.step()
    for i, m in enumerate(masks):
        kept[i][~stopped[i]] = m.detach()[~stopped[i]]
    return kept, history


@register_method("mdm")
class MDM(Method):
    """Multiple Dynamic Masks (Peng et al. 2022): fused multi-scale masks that preserve the target logit.

    Follows ``ytpeng-tongji/MultipleDynamicMasks`` (``tran_nn_dmask_rgb.py``, ``dynamic_maskpair.py``,
    ``generate_mask_traditional_networks.py``). Per scale s (default: the fusion script's 26 scales
    6..25, 27, 29, 30, 32, 56, 112) one ``s x s`` mask initialised at 0.5, no sigmoid or clamp, upsampled
    bilinearly (``align_corners=True``) and multiplied with the normalised input (masked-out = mean colour);
    Adam(lr 3e-3) on ``1e-2 (f_c(masked) - f_c(x))^2 + ||m||_1 / s^2`` for at most 20000 iterations, early
    stop when 200 iterations bring no improvement once past 2000 (:func:`fit_masks`); then
    :func:`fuse_scales`. ``c`` is the given target; the released script explains the predicted class (the
    same for correctly classified items). All scales x items are optimised in one batched loop.
    """

    citation = (
        "Peng, Yang, Liu & He. MDM: Multiple Dynamic Masks for Visual Explanation of Neural Networks. "
        "arXiv:2207.08046, 2022"
    )
    defaults = {
        "scales": RELEASED_SCALES,
        "loss_weight": 1e-2,
        "lr": 3e-3,
        "max_iter": 20000,
        "patience": 200,
        "min_iter": 2000,
        "percentile": 1.0,
        "min_count": 5,
        "max_batch": 256,
    }

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        for name in ("max_iter", "patience", "min_iter", "max_batch", "min_count"):
            check_number(self, name, 1 if name in ("max_batch", "min_count") else 0, integer=True)
        for name in ("loss_weight", "lr", "percentile"):
            check_number(self, name, 0.0)
        scales = self.params["scales"]
        if not scales or not all(isinstance(s, int) and not isinstance(s, bool) and s >= 1 for s in scales):
            raise ParamError(f"method 'mdm': scales must be a non-empty list of positive integers, got {scales!r}")
        if self.params["min_count"] > len(scales):
            raise ParamError(f"method 'mdm': min_count={self.params['min_count']} exceeds the {len(scales)} scales")

    def attribute(self, model: nn.Module, inputs: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        net, mean, std = normalisation(model)
        x_norm = ((inputs.detach() - mean) / std).to(inputs.dtype)
        masks, _ = fit_masks(net, x_norm, target, list(self.params["scales"]), self.params)
        fused = fuse_scales(masks, tuple(inputs.shape[-2:]), float(self.params["percentile"]), self.params["min_count"])
        return fused.to(torch.float32)
