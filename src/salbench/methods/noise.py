"""Noise wrappers over any registered method: SmoothGrad, SmoothGrad-squared and VarGrad.

Each evaluates its base method on ``n_samples`` noisy copies ``x + N(0, sigma^2)`` of every item, with
``sigma = noise_level * (max(x) - min(x))`` of that item (Smilkov et al.'s noise level), and aggregates:
the mean (SmoothGrad), the mean of squares (SmoothGrad-squared) or the variance (VarGrad). For a base
with channel attributions (gradient, integrated gradients, ...) the channels are aggregated and then
reduced once by the base's own ``channel_reduction``, as in the papers; other bases (Grad-CAM, ...) are
aggregated map by map. Rows ``(item, sample)`` are evaluated ``internal_batch_size`` at a time (a base that
samples itself, e.g. integrated gradients, splits each of those calls by its own cap); the noise
of each row is a counter-based draw from (``seed``, the item's content, the sample index), made on the
inputs' device (:class:`~salbench.methods.sampling.RowSampler`), so maps do not depend on batch
composition or chunking.
"""

from __future__ import annotations

from typing import Any, ClassVar, Sequence

import torch
from torch import nn

from ..params import ParamError
from .base import ChannelMethod, Method, check_number, create_method, register_method
from .runs import item_runs, split_runs
from .sampling import RowSampler


#: how many noise values are drawn at once at most. On a GPU several chunks' worth (fewer, larger kernels:
#: launches are what bound a GPU running a small model; 2**24 float32 values are 64 MiB, plus about as much
#: for the draw); on the CPU one chunk at a time: launches are cheap there, and large temporaries cost page
#: faults (drawing SmoothGrad's 40 MB at once made it 10 % slower on the small CNN)
NOISE_BLOCK_ELEMENTS = {"cpu": 0, "gpu": 1 << 24}


class Moments:
    """Per-item running sum (and, with ``variance``, sum of squared deviations), updated run by run.

    Each item's rows in an update are one run (:mod:`.runs`). With ``variance`` each run's mean and squared
    deviations are merged into the running ones (Chan, Golub & LeVeque 1979): numerically stable (no
    ``E[a^2] - E[a]^2`` cancellation), so never negative.
    """

    def __init__(self, n_items: int, like: torch.Tensor, variance: bool) -> None:
        self.count = [0] * n_items
        self.total = torch.zeros((n_items, *like.shape[1:]), dtype=like.dtype, device=like.device)
        self.m2 = torch.zeros_like(self.total) if variance else None

    def update(self, first: int, counts: Sequence[int], values: torch.Tensor) -> None:
        """Add ``values``: ``counts[j]`` consecutive rows of item ``first + j``, for each ``j`` in turn."""
        for item, rows in split_runs(first, counts, values):
            k, seen = len(rows), self.count[item]
            total = rows.sum(dim=0)
            if self.m2 is not None:
                mean = total / k
                m2 = (rows - mean).square_().sum(dim=0)
                if seen:  # merge with the running mean
                    m2 += (mean - self.total[item] / seen).square_().mul_(seen * k / (seen + k))
                self.m2[item] += m2
            self.total[item] += total
            self.count[item] = seen + k

    def _counts(self) -> torch.Tensor:
        shape = (len(self.count),) + (1,) * (self.total.dim() - 1)
        return torch.tensor(self.count, dtype=self.total.dtype, device=self.total.device).view(shape)

    @property
    def mean(self) -> torch.Tensor:
        """Mean per item."""
        return self.total / self._counts()

    def variance(self) -> torch.Tensor:
        """Population variance per item (needs ``variance=True``)."""
        assert self.m2 is not None
        return self.m2 / self._counts()


class NoiseAggregate(Method):
    """Base of the noise wrappers: an aggregate of the base method's attributions over noisy copies."""

    defaults = {
        "base": "gradient",
        "base_params": {},
        "n_samples": 50,
        "noise_level": 0.15,
        "internal_batch_size": 64,
        "seed": 0,
    }
    #: whether :meth:`aggregate` needs the variance (kept stably, at some extra cost)
    needs_variance: ClassVar[bool] = False

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        check_number(self, "n_samples", 1, integer=True)
        check_number(self, "noise_level", 0.0)
        check_number(self, "internal_batch_size", 1, integer=True)
        if not isinstance(self.params["base_params"], dict):
            raise ParamError(f"method {self.name!r}: base_params must be a mapping, got {self.params['base_params']!r}")
        self.base = create_method(self.params["base"], **self.params["base_params"])
        if not self.base.uses_model:
            raise ParamError(f"method {self.name!r}: base {self.params['base']!r} ignores the model")

    def _evaluate(self, model: nn.Module, inputs: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if isinstance(self.base, ChannelMethod):
            return self.base.attribute_channels(model, inputs, target)
        return self.base.attribute(model, inputs, target)

    def attribute(self, model: nn.Module, inputs: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        p = self.params
        x = inputs.detach()
        n = p["n_samples"]
        sigma = p["noise_level"] * (x.flatten(1).amax(1) - x.flatten(1).amin(1))
        sampler = RowSampler(x, p["seed"], n_samples=n)
        moments: Moments | None = None
        count, chunk = x.shape[0] * n, p["internal_batch_size"]
        every = torch.arange(count, device=x.device)
        every_item, every_sample = every // n, every % n
        # the noise of several chunks is drawn at once (fewer, larger kernels), within a fixed memory budget
        budget = NOISE_BLOCK_ELEMENTS["cpu" if x.device.type == "cpu" else "gpu"]
        block = chunk * max(1, budget // (chunk * x[0].numel()))
        for start in range(0, count, chunk):
            stop = min(start + chunk, count)
            if start % block == 0:
                rows = slice(start, min(start + block, count))
                noise_block = sampler.normal(every_item[rows], every_sample[rows], tuple(x.shape[1:])).to(x)
            items = every_item[start:stop]
            noisy = noise_block[start % block : start % block + stop - start].mul_(
                sigma.index_select(0, items).view(-1, 1, 1, 1)).add_(x.index_select(0, items))
            values = self.transform(self._evaluate(model, noisy, target.index_select(0, items)))
            if moments is None:
                moments = Moments(x.shape[0], values, self.needs_variance)
            moments.update(*item_runs(start, stop, n), values)
        if moments is None:
            raise ValueError(f"method {self.name!r} needs at least one item")
        aggregate = self.aggregate(moments)
        if isinstance(self.base, ChannelMethod):
            return self.base.reduce(aggregate)
        return aggregate.to(torch.float32)

    def transform(self, values: torch.Tensor) -> torch.Tensor:
        """What is aggregated of each noisy copy's attribution (the attribution itself by default)."""
        return values

    def aggregate(self, moments: Moments) -> torch.Tensor:
        """The wrapper's statistic of the per-item attributions (their mean by default)."""
        return moments.mean


@register_method("smoothgrad")
class SmoothGrad(NoiseAggregate):
    """Mean of the base method over noisy copies of the input (Smilkov et al. 2017; n = 50, noise 15%)."""

    citation = (
        "Smilkov, Thorat, Kim, Viegas & Wattenberg. SmoothGrad: removing noise by adding noise. "
        "ICML Workshop on Visualization for Deep Learning 2017. arXiv:1706.03825"
    )


@register_method("smoothgrad_sq")
class SmoothGradSquared(NoiseAggregate):
    """Mean of the squared base attributions over noisy copies (SmoothGrad-squared, Hooker et al. 2019)."""

    citation = (
        "Hooker, Erhan, Kindermans & Kim. A Benchmark for Interpretability Methods in Deep Neural "
        "Networks. NeurIPS 2019. arXiv:1806.10758"
    )

    def transform(self, values: torch.Tensor) -> torch.Tensor:
        return values.square()


@register_method("vargrad")
class VarGrad(NoiseAggregate):
    """Variance of the base attributions over noisy copies (VarGrad, Adebayo et al. 2018); non-negative."""

    citation = (
        "Adebayo, Gilmer, Goodfellow & Kim. Local Explanation Methods for Deep Neural Networks Lack "
        "Sensitivity to Parameter Values. ICLR Workshop 2018. arXiv:1810.03307"
    )

    needs_variance = True

    def aggregate(self, moments: Moments) -> torch.Tensor:
        return moments.variance()
