"""Path-integral attributions: integrated gradients (Sundararajan et al. 2017) and expected gradients
(Erion et al. 2021).

Both are sums over ``items x samples`` gradient evaluations. :func:`accumulate_gradients` evaluates those
rows in chunks of at most ``internal_batch_size`` (one forward/backward each), so 64 items x 50 steps never
hold 3,200 activations at once; the chunking changes nothing but floating-point rounding.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np
import torch
from torch import nn

from ..params import check_choice
from .base import ChannelMethod, check_number, register_method
from .baselines import BASELINES, gaussian_blur, make_baseline
from .gradient import input_gradient
from .runs import add_runs_
from .sampling import RowSampler

QUADRATURES = ("riemann_left", "riemann_right", "riemann_middle", "riemann_trapezoid", "gausslegendre")
REFERENCES = ("uniform", "blur")

#: ``rows(items, samples) -> (points, scales)``: the inputs of a chunk of rows and what multiplies their gradients
RowFn = Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]


def quadrature(method: str, n_steps: int) -> tuple[list[float], list[float]]:
    """``(alphas, weights)`` of an ``n_steps`` rule for integrating over [0, 1] (the rules captum offers).

    The weights sum to one. captum 0.9's ``riemann_trapezoid`` uses the trapezoid's nodes with weights
    ``1/n`` (ends halved), which sum to ``(n - 1) / n``; here the trapezoid rule has step ``1 / (n - 1)``.
    """
    if method == "gausslegendre":
        nodes, weights = np.polynomial.legendre.leggauss(n_steps)
        return ((nodes + 1) / 2).tolist(), (weights / 2).tolist()
    if method == "riemann_trapezoid":
        if n_steps < 2:
            raise ValueError("riemann_trapezoid needs n_steps >= 2")
        alphas = np.linspace(0.0, 1.0, n_steps)
        weights = np.full(n_steps, 1.0 / (n_steps - 1))
        weights[[0, -1]] /= 2
        return alphas.tolist(), weights.tolist()
    offset = {"riemann_left": 0.0, "riemann_right": 1.0, "riemann_middle": 0.5}[method]
    return [(k + offset) / n_steps for k in range(n_steps)], [1.0 / n_steps] * n_steps


def accumulate_gradients(
    model: nn.Module, inputs: torch.Tensor, target: torch.Tensor, n: int, rows: RowFn, internal_batch_size: int
) -> torch.Tensor:
    """``sum_k scale_ik * grad f_target(point_ik)`` for ``k < n``, per item: ``[B,C,H,W]``.

    Rows are item-major (row ``r`` is item ``r // n``, sample ``r % n``) and evaluated at most
    ``internal_batch_size`` at a time; ``rows`` builds only the points and scales of the current chunk.
    """
    total = torch.zeros_like(inputs)
    count = inputs.shape[0] * n
    every = torch.arange(count, device=inputs.device)
    every_item, every_sample = every // n, every % n
    for start in range(0, count, internal_batch_size):
        stop = min(start + internal_batch_size, count)
        items, samples = every_item[start:stop], every_sample[start:stop]
        points, scales = rows(items, samples)
        add_runs_(total, start, stop, n, input_gradient(model, points, target.index_select(0, items)) * scales)
    return total


@register_method("integrated_gradients")
class IntegratedGradients(ChannelMethod):
    """Integrated gradients: ``(x - x') * integral of grad f(x' + a (x - x')) da`` (Sundararajan et al. 2017).

    The path integral is a quadrature over ``n_steps`` points (captum's rules); the baseline ``x'`` is one
    of :data:`~salbench.methods.baselines.BASELINES` (pixel space; ``seed`` seeds ``uniform``,
    ``blur_sigma`` sets ``blur``). Completeness: the attributions sum to ``f(x) - f(x')`` as ``n_steps`` grows.
    """

    citation = (
        "Sundararajan, Taly & Yan. Axiomatic Attribution for Deep Networks. ICML 2017. arXiv:1703.01365"
    )
    #: the paper's black baseline and right Riemann sum; 50 steps as in Adebayo et al. (2018)
    defaults = {
        "baseline": "black",
        "n_steps": 50,
        "method": "riemann_right",
        "internal_batch_size": 64,
        "seed": 0,
        "blur_sigma": 5.0,
        "channel_reduction": "sum",
    }

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        check_choice("method", self.name, "baseline", self.params["baseline"], BASELINES)
        check_choice("method", self.name, "method", self.params["method"], QUADRATURES)
        check_number(self, "n_steps", 2 if self.params["method"] == "riemann_trapezoid" else 1, integer=True)
        check_number(self, "internal_batch_size", 1, integer=True)
        check_number(self, "blur_sigma", 1e-6)

    def attribute_channels(self, model: nn.Module, inputs: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        p = self.params
        x = inputs.detach()
        baseline = make_baseline(p["baseline"], model, x, p["seed"], p["blur_sigma"])
        delta = x - baseline
        nodes = quadrature(p["method"], p["n_steps"])
        alphas, weights = (torch.tensor(v, dtype=x.dtype, device=x.device) for v in nodes)

        def rows(items: torch.Tensor, steps: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            points = baseline.index_select(0, items) + alphas[steps].view(-1, 1, 1, 1) * delta.index_select(0, items)
            return points, weights[steps].view(-1, 1, 1, 1)

        return delta * accumulate_gradients(model, x, target, p["n_steps"], rows, p["internal_batch_size"])


@register_method("expected_gradients")
class ExpectedGradients(ChannelMethod):
    """Expected gradients: ``E_{x'~D, a~U(0,1)} (x - x') * grad f(x' + a (x - x'))`` (Erion et al. 2021).

    Erion et al. draw the references ``x'`` from the training set. A method here sees only the items it
    explains, and a reference drawn from other items of the batch would make a map depend on its batch,
    so the reference distribution ``D`` is input-independent noise or a blurred copy of the item:

    * ``uniform``: images of uniform noise in [0, 1) (every pixel independent);
    * ``blur``: the item blurred by a Gaussian whose std is drawn uniformly from (0, ``blur_sigma``].

    Each ``(item, sample)`` draws its reference and ``a`` from its own generator seeded by ``seed`` and the
    item's content. 50 samples match integrated gradients' 50 gradient evaluations (the paper leaves the
    count to the application).
    """

    citation = (
        "Erion, Janizek, Sturmfels, Lundberg & Lee. Improving performance of deep learning models with "
        "axiomatic attribution priors and expected gradients. Nature Machine Intelligence 3:620-631, 2021. "
        "arXiv:1906.10670"
    )
    defaults = {
        "reference": "uniform",
        "n_samples": 50,
        "internal_batch_size": 64,
        "seed": 0,
        "blur_sigma": 5.0,
        "channel_reduction": "sum",
    }

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        check_choice("method", self.name, "reference", self.params["reference"], REFERENCES)
        check_number(self, "n_samples", 1, integer=True)
        check_number(self, "internal_batch_size", 1, integer=True)
        check_number(self, "blur_sigma", 1e-6)

    def attribute_channels(self, model: nn.Module, inputs: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        p = self.params
        x = inputs.detach()
        sampler = RowSampler(x, p["seed"], n_samples=p["n_samples"])
        shape = tuple(x.shape[1:])

        def rows(items: torch.Tensor, samples: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            # stream 0: (alpha, blur draw) per row; stream 1: the uniform reference image
            draws = sampler.rows(items, samples)
            alphas, sigmas = draws.uniform((2,)).to(x).unbind(1)
            alphas = alphas.view(-1, 1, 1, 1)
            inputs = x.index_select(0, items)
            if p["reference"] == "uniform":
                references = draws.uniform(shape, stream=1).to(x)
            else:
                references = gaussian_blur(inputs, (1 - sigmas) * p["blur_sigma"], p["blur_sigma"])
            delta = inputs - references
            return references + alphas * delta, delta / p["n_samples"]

        return accumulate_gradients(model, x, target, p["n_samples"], rows, p["internal_batch_size"])
