"""Noise wrappers over any registered method: SmoothGrad, SmoothGrad-squared and VarGrad, and ``noisy`` (a
map plus noise, for the sanity checks' noise trap; see :class:`Noisy`).

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

import hashlib
from typing import Any, ClassVar, Sequence

import torch
from torch import nn

from ..params import ParamError
from .base import ChannelMethod, Method, check_number, create_method, register_method
from .runs import item_runs, split_runs
from .sampling import RowSampler, mix_seed


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


def model_fingerprint(model: nn.Module) -> int:
    """A 63-bit digest of ``model``'s parameter and buffer values (not their memory layout or device).

    Per tensor: the float64 sum, sum of squares and position-weighted sum, fetched in one host copy and
    hashed; a re-initialised, permuted or shifted layer changes it, a copy in another layout does not.
    """
    tensors = [t.detach() for t in (*model.parameters(), *model.buffers()) if t.is_floating_point()]
    if not tensors:
        return 0
    stats = []
    for t in tensors:
        flat = t.reshape(-1).to(torch.float64)
        weights = torch.arange(1, flat.numel() + 1, dtype=torch.float64, device=flat.device)
        stats.append(torch.stack([flat.sum(), flat.square().sum(), (flat * weights).sum()]))
    digest = hashlib.sha256(torch.cat(stats).cpu().numpy().tobytes()).digest()
    return int.from_bytes(digest[:8], "little") >> 1


@register_method("noisy")
class Noisy(Method):
    """The base map, RMS-normalised per item, plus ``sigma`` times fresh i.i.d. N(0, 1) noise (the noise trap).

    ``noisy(m, sigma)(x) = m(x) / sqrt(mean(m(x)^2)) + sigma * eta``: ``sigma`` is in units of the map's own
    root mean square (Quantus's ASME normalisation), so it means the same for every base method. A sanity
    check that scores these maps better than the clean ones rewards noise (Binder et al., CVPR 2023;
    :mod:`salbench.sanity.verdicts`). ``eta`` is fresh for every distinct question: it is a counter-based draw
    (:class:`~.sampling.RowSampler`) keyed by ``seed``, the model's parameter values, the item's content and
    its target, so the maps of an original and a randomised model (or of two targets) get independent noise,
    while asking the same question twice (a rerun, another batch size, shard or memory layout) gives the
    same map. A base map that is zero everywhere stays zero before the noise is added.
    """

    citation = (
        "Binder, Weber, Lapuschkin, Montavon, Müller & Samek. Shortcomings of Top-Down Randomization-Based "
        "Sanity Checks for Evaluations of Deep Neural Network Explanations. CVPR 2023. arXiv:2211.12486"
    )
    defaults = {"base": "gradient", "base_params": {}, "sigma": 1.0, "seed": 0}

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        check_number(self, "sigma", 0.0)
        check_number(self, "seed", 0, integer=True)
        if not isinstance(self.params["base_params"], dict):
            raise ParamError(f"method {self.name!r}: base_params must be a mapping, got {self.params['base_params']!r}")
        self.base = create_method(self.params["base"], **self.params["base_params"])
        self.uses_model = self.base.uses_model

    def skip_reason(self, model_spec: Any) -> str | None:
        return self.base.skip_reason(model_spec)

    def attribute(self, model: nn.Module, inputs: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        maps = self.base.attribute(model, inputs, target).to(torch.float32)
        rms = maps.flatten(1).square().mean(1).sqrt()
        scaled = maps / torch.where(rms > 0, rms, torch.ones_like(rms)).view(-1, 1, 1)
        if self.params["sigma"] == 0:
            return scaled
        key = mix_seed(int(self.params["seed"]), model_fingerprint(model))
        sampler = RowSampler(inputs.detach(), key)
        items = torch.arange(inputs.shape[0], device=inputs.device)
        noise = sampler.normal(items, target.to(inputs.device).long(), tuple(maps.shape[1:]))
        return scaled + float(self.params["sigma"]) * noise.to(scaled.device)
