"""Faithfulness metrics: perturb the input along the map and read the model's response.

Every metric here is a set of perturbed inputs per item (one per curve step or noise sample) pushed through
the model by :func:`perturbation_curves`: all (item, step) pairs of a batch in chunks of ``max_batch``
inputs under ``torch.inference_mode()``, so the memory cap holds for the perturbation (even ROAD's linear
solve) and for the forward pass together.

- ``deletion`` / ``insertion``: Petsiuk, Das & Saenko, RISE, BMVC 2018.
- ``road_morf`` / ``road_lerf``: Rong et al., ROAD, ICML 2022 (noisy linear imputation, :mod:`.imputation`).
- ``pixel_removal``: Böhle, Fritz & Schiele, CoDA-Nets, CVPR 2021 (least important pixels first).
- ``infidelity``: Yeh et al., NeurIPS 2019 (noisy-baseline perturbations, optimally scaled map).

The curve metrics (:class:`CurveMetric`: deletion, insertion, ROAD) also return the per-item curves their value
reduces (:meth:`CurveMetric.score_curves`); the score job stores them for the report's curve figures.

Max-sensitivity (Yeh et al. 2019) re-runs the saliency method on perturbed inputs: it is in :mod:`.robustness`.
"""

from __future__ import annotations

import abc
from typing import Any, Callable, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..models.coda import EncodedCoDA
from ..params import ParamError, check_choice
from .base import Metric, ScoringBatch, register_metric, saliency_ranks, top_pixels
from .imputation import noisy_linear_imputation

BASELINES = ("mean", "black")
READOUTS = ("softmax", "sigmoid", "accuracy", "logit")

#: ``perturb(items[B], steps[B]) -> inputs[B,C,H,W]`` for flat (item, step) pairs
Perturb = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
#: ``readout(items[B], inputs[B,C,H,W], logits[B,K]) -> values[B, ...]``
Readout = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


def baseline_colour(model: nn.Module, baseline: str, like: torch.Tensor) -> torch.Tensor:
    """``[1,C,1,1]`` pixel-space fill colour: the model's normalisation mean (``"mean"``) or 0 (``"black"``)."""
    if baseline == "black":
        return torch.zeros((1, like.shape[1], 1, 1), dtype=like.dtype, device=like.device)
    mean = getattr(model, "mean", None)
    if not isinstance(mean, torch.Tensor):
        raise ParamError("baseline 'mean' needs a model with a 'mean' buffer (NormalizedClassifier)")
    return mean.to(device=like.device, dtype=like.dtype).reshape(1, -1, 1, 1).expand(1, like.shape[1], 1, 1)


def target_readout(targets: torch.Tensor, kind: str) -> Readout:
    """Per input: the target's softmax or sigmoid probability, its logit, or 1.0 when it is the argmax."""
    if kind not in READOUTS:
        raise ParamError(f"readout {kind!r} is not one of {', '.join(READOUTS)}")

    def readout(items: torch.Tensor, inputs: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        t = targets[items, None]
        if kind == "softmax":
            return logits.softmax(dim=1).gather(1, t).squeeze(1)
        if kind == "sigmoid":
            return logits.gather(1, t).squeeze(1).sigmoid()
        if kind == "logit":
            return logits.gather(1, t).squeeze(1)
        return (logits.argmax(dim=1) == t.squeeze(1)).to(logits.dtype)

    return readout


def perturbation_curves(
    model: nn.Module, perturb: Perturb, readout: Readout, n_items: int, steps: int, max_batch: int, device: torch.device
) -> torch.Tensor:
    """``readout`` of ``model(perturb(i, k))`` for every item ``i`` and step ``k``: ``[n_items, steps, ...]``.

    The ``n_items * steps`` pairs, item-major, go through ``perturb`` and the model in chunks of at most
    ``max_batch`` under ``torch.inference_mode()``.
    """
    item = torch.arange(n_items, device=device).repeat_interleave(steps)
    step = torch.arange(steps, device=device).repeat(n_items)
    values = []
    with torch.inference_mode():
        for start in range(0, item.numel(), max_batch):
            i, k = item[start : start + max_batch], step[start : start + max_batch]
            inputs = perturb(i, k)
            values.append(readout(i, inputs, model(inputs)))
    out = torch.cat(values)
    return out.reshape(n_items, steps, *out.shape[1:])


def select(chosen: torch.Tensor, first: torch.Tensor, rest: torch.Tensor) -> torch.Tensor:
    """``torch.where(chosen, first, rest)`` for finite values, as ``torch.lerp(rest, first, chosen)``.

    Exact: with weight 0 lerp returns ``rest + 0 * (first - rest)`` and with weight 1 ``first - (first - rest)
    * 0`` (a test holds it to ``torch.where`` bitwise). ``torch.where``'s CPU kernel branches per value and is
    2-5x slower on these broadcast shapes (0.34-0.74 vs 0.15 ms for 32 RGB images at 64 px, one thread),
    and a selection runs once per forward chunk.
    """
    return torch.lerp(rest, first, chosen.to(rest.dtype))


def reveal(ranks: torch.Tensor, counts: torch.Tensor, first: torch.Tensor, rest: torch.Tensor) -> torch.Tensor:
    """``[B,C,H,W]``: ``first`` on the ``counts[b]`` pixels of lowest ``ranks`` (``[B,H*W]``), ``rest`` elsewhere."""
    height, width = torch.broadcast_shapes(first.shape, rest.shape)[-2:]
    return select((ranks < counts[:, None]).reshape(-1, 1, height, width), first, rest)


def step_counts(pixels: int, steps: int, device: torch.device) -> torch.Tensor:
    """``[steps+1]`` pixels changed after each of ``steps`` equal steps: ``k * pixels // steps``."""
    return torch.arange(steps + 1, device=device) * pixels // steps


def deletion_curves(
    model: nn.Module,
    images: torch.Tensor,
    maps: torch.Tensor,
    targets: torch.Tensor,
    steps: int,
    baseline: str = "mean",
    max_batch: int = 256,
) -> torch.Tensor:
    """Softmax probability of each item's target class after each deletion step, ``[N, steps+1]``.

    Step ``k`` replaces the ``k*H*W // steps`` most salient pixels (all channels) by the baseline colour;
    step 0 is the intact image, step ``steps`` the all-baseline image.
    """
    fill = baseline_colour(model, baseline, images)
    ranks = saliency_ranks(maps.to(images.device))
    counts = step_counts(ranks.shape[1], steps, images.device)

    def perturb(i: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
        return reveal(ranks.index_select(0, i), counts[k], fill, images.index_select(0, i))

    readout = target_readout(targets.to(images.device), "softmax")
    return perturbation_curves(model, perturb, readout, len(images), steps + 1, max_batch, images.device)


def rise_blur_kernel(size: int, sigma: float) -> np.ndarray:
    """RISE's blur taps (``[size]``, separable): a centred unit impulse smoothed by ``scipy.ndimage``'s Gaussian.

    RISE builds its 2-D kernel by filtering a ``size x size`` impulse with ``gaussian_filter(sigma)``; that
    filter's default reflecting border folds the tails back into the window, so the taps sum to 1 and are
    flatter than a truncated Gaussian. The 2-D kernel is the outer product of these taps.
    """
    import scipy.ndimage

    impulse = np.zeros(size)
    impulse[size // 2] = 1.0
    return scipy.ndimage.gaussian_filter1d(impulse, sigma)


def rise_blur(images: torch.Tensor, fill: torch.Tensor, size: int, sigma: float) -> torch.Tensor:
    """RISE's blurred image: each channel convolved with :func:`rise_blur_kernel`, the border padded by ``fill``.

    RISE blurs the normalised image with zero padding; in pixel space that pads with the normalisation mean.
    """
    taps = torch.as_tensor(rise_blur_kernel(size, sigma), dtype=images.dtype, device=images.device)
    channels = images.shape[1]
    shifted = images - fill
    out = F.conv2d(shifted, taps.view(1, 1, -1, 1).expand(channels, 1, -1, 1), padding=(size // 2, 0), groups=channels)
    out = F.conv2d(out, taps.view(1, 1, 1, -1).expand(channels, 1, 1, -1), padding=(0, size // 2), groups=channels)
    return out + fill


def insertion_curves(
    model: nn.Module,
    images: torch.Tensor,
    maps: torch.Tensor,
    targets: torch.Tensor,
    steps: int,
    kernel_size: int = 11,
    sigma: float = 5.0,
    max_batch: int = 256,
) -> torch.Tensor:
    """Softmax probability of the target after each insertion step, ``[N, steps+1]``.

    Step 0 is RISE's blurred image (:func:`rise_blur`); step ``k`` shows the ``k*H*W // steps`` most salient
    pixels of the intact image over it; step ``steps`` is the intact image.
    """
    blurred = rise_blur(images, baseline_colour(model, "mean", images), kernel_size, sigma)
    ranks = saliency_ranks(maps.to(images.device))
    counts = step_counts(ranks.shape[1], steps, images.device)

    def perturb(i: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
        return reveal(ranks.index_select(0, i), counts[k], images.index_select(0, i), blurred.index_select(0, i))

    readout = target_readout(targets.to(images.device), "softmax")
    return perturbation_curves(model, perturb, readout, len(images), steps + 1, max_batch, images.device)


def trapezoid_auc(curves: torch.Tensor) -> torch.Tensor:
    """Area under ``[N, n+1]`` curves on [0, 1] by the trapezoid rule: ``(sum(a) - a_0/2 - a_n/2) / n``."""
    n = curves.shape[1] - 1
    return (curves.sum(dim=1) - curves[:, 0] / 2 - curves[:, -1] / 2) / n


def as_numpy(values: torch.Tensor) -> np.ndarray:
    """Per-item scores as the contract's float64 numpy array."""
    return values.detach().cpu().numpy().astype(np.float64)


class CurveMetric(Metric):
    """A metric whose per-item value reduces a per-item response curve (deletion, insertion, ROAD).

    :meth:`score_curves` returns the values and the curves they reduce, from one pass of the model, so the score
    job can store the curves (the report draws them) at no extra cost.
    """

    @abc.abstractmethod
    def curves(self, batch: ScoringBatch) -> torch.Tensor:
        """The batch's curves ``[N, S]`` under this metric's parameters."""

    @abc.abstractmethod
    def fractions(self) -> np.ndarray:
        """``[S]`` nominal share of the pixels perturbed at each point of a curve."""

    @abc.abstractmethod
    def reduce(self, curves: torch.Tensor) -> torch.Tensor:
        """Per-item values ``[N]`` of ``[N, S]`` curves."""

    def score_curves(self, batch: ScoringBatch) -> tuple[np.ndarray, np.ndarray]:
        """Per-item values float64 ``[N]`` and the curves they reduce, float64 ``[N, S]``."""
        curves = self.curves(batch)
        return as_numpy(self.reduce(curves)), as_numpy(curves)

    def score(self, batch: ScoringBatch) -> np.ndarray:
        return self.score_curves(batch)[0]


class RiseCurve(CurveMetric):
    """Deletion / insertion: trapezoid area under the target's softmax probability along the map's order."""

    citation = (
        "Petsiuk, Das & Saenko. RISE: Randomized Input Sampling for Explanation of Black-box Models. "
        "BMVC 2018. arXiv:1806.07421"
    )
    needs_model = True

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        for key in ("steps", "max_batch"):
            self.check_number(key, 1, integer=True)

    def fractions(self) -> np.ndarray:
        """``k / steps`` for ``k = 0..steps`` (step ``k`` changes ``k*H*W // steps`` pixels)."""
        return np.arange(self.params["steps"] + 1) / self.params["steps"]

    def reduce(self, curves: torch.Tensor) -> torch.Tensor:
        return trapezoid_auc(curves)


@register_metric("deletion")
class Deletion(RiseCurve):
    """Area under the target probability as the most salient pixels are removed first (Petsiuk et al. 2018)."""

    #: the paper removes 224 px per step at 224 x 224, i.e. 224 steps (its bulk evaluation 224*8 px, 28 steps);
    #: the embedded default uses 16. "mean" fills with the normalisation mean (zero in normalised space, the
    #: RISE choice). RISE scores the predicted class; an item here scores its target, the explained class.
    defaults = {"steps": 16, "baseline": "mean", "max_batch": 256}
    higher_is_better = False

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        check_choice("metric", self.name, "baseline", self.params["baseline"], BASELINES)

    def curves(self, batch: ScoringBatch) -> torch.Tensor:
        p = self.params
        return deletion_curves(
            self.model(batch), batch.images, batch.maps, batch.targets, p["steps"], p["baseline"], p["max_batch"]
        )


@register_metric("insertion")
class Insertion(RiseCurve):
    """Area under the target probability as the most salient pixels are inserted into a blurred image (RISE)."""

    #: RISE's blur: 11 x 11 taps, sigma 5 (scipy's reflect-folded Gaussian), zero padding in normalised space;
    #: steps as for deletion (16 here, 224 px per step in the paper). Scores the target class.
    defaults = {"steps": 16, "kernel_size": 11, "sigma": 5.0, "max_batch": 256}

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        self.check_number("kernel_size", 1, integer=True)
        self.check_number("sigma", 1e-6)

    def curves(self, batch: ScoringBatch) -> torch.Tensor:
        p = self.params
        return insertion_curves(
            self.model(batch), batch.images, batch.maps, batch.targets, p["steps"], p["kernel_size"], p["sigma"],
            p["max_batch"],
        )


class Road(CurveMetric):
    """ROAD: mean over removal percentages of the model's response to noisy-linear-imputed inputs."""

    citation = (
        "Rong, Leemann, Borisov, Kasneci & Kasneci. A Consistent and Efficient Evaluation Strategy for Attribution "
        "Methods (ROAD). ICML 2022, PMLR 162:18770-18795. arXiv:2202.00449"
    )
    #: the paper's percentages 10..90 %, imputation noise 0.01, and accuracy (1 when the target is still the
    #: argmax) as in the paper and Quantus; "softmax" reads the target probability instead. ``tol`` is the RMS
    #: residual (pixel units) the imputation solve stops at; ``seed`` seeds the imputation noise.
    defaults = {
        "percentages": (10, 20, 30, 40, 50, 60, 70, 80, 90), "noise": 0.01, "readout": "accuracy", "seed": 0,
        "tol": 1e-5, "max_batch": 256,
    }
    needs_model = True
    #: True: most relevant first; False: least relevant first
    most_relevant_first: ClassVar[bool] = True

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        percentages = self.params["percentages"]
        valid = [isinstance(p, int) and not isinstance(p, bool) and 0 <= p < 100 for p in percentages]
        if not valid or not all(valid):
            raise ParamError(f"metric {self.name!r}: percentages must be integers in [0, 100), got {percentages!r}")
        check_choice("metric", self.name, "readout", self.params["readout"], ("accuracy", "softmax"))
        self.check_number("noise", 0)
        self.check_number("tol", 1e-12)
        self.check_number("seed", 0, integer=True)
        self.check_number("max_batch", 1, integer=True)

    def curves(self, batch: ScoringBatch) -> torch.Tensor:
        """``[N, len(percentages)]`` responses, one column per removal percentage."""
        p, images = self.params, batch.images
        device = images.device
        maps = batch.maps.to(device)
        ranks = saliency_ranks(maps if self.most_relevant_first else -maps)
        height, width = images.shape[-2:]
        counts = torch.tensor(p["percentages"], device=device) * (height * width) // 100
        generator = torch.Generator(device=device).manual_seed(p["seed"])

        def perturb(i: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
            removed = (ranks.index_select(0, i) < counts[k, None]).reshape(-1, height, width)
            return noisy_linear_imputation(images.index_select(0, i), removed, p["noise"], generator, tol=p["tol"])

        readout = target_readout(batch.targets.to(device), p["readout"])
        return perturbation_curves(
            self.model(batch), perturb, readout, len(images), len(p["percentages"]), p["max_batch"], device
        )

    def fractions(self) -> np.ndarray:
        """The removal percentages as shares (the curve has no point at 0 %)."""
        return np.asarray(self.params["percentages"], dtype=np.float64) / 100

    def reduce(self, curves: torch.Tensor) -> torch.Tensor:
        return curves.mean(dim=1)


@register_metric("road_morf")
class RoadMorf(Road):
    """ROAD, most relevant first: mean accuracy as the top 10..90 % of pixels are imputed (Rong et al. 2022)."""

    higher_is_better = False


@register_metric("road_lerf")
class RoadLerf(Road):
    """ROAD, least relevant first: mean accuracy as the bottom 10..90 % of pixels are imputed (Rong et al. 2022)."""

    most_relevant_first = False


@register_metric("pixel_removal")
class PixelRemoval(Metric):
    """Target probability after removing the least important 25 % of pixels (CoDA-Nets, Böhle et al. 2021)."""

    citation = (
        "Böhle, Fritz & Schiele. Convolutional Dynamic Alignment Networks for Interpretable Classifications. "
        "CVPR 2021. arXiv:2104.00032 (pixel_removal.py in github.com/moboehle/CoDA-Nets)"
    )
    #: CoDA removes the least important pixels by multiplying its 6-channel [rgb, 1-rgb] input by a 0/1 mask and
    #: reads the sigmoid of the true class's logit. ``baseline: auto`` keys the removal by model family: a
    #: CoDA-Net's pixel is zeroed in all 6 channels (the authors' ``masked_predict``; a black pixel would be
    #: [0, 1], not removed), any other model's pixel is set to black; ``black`` / ``mean`` set pixel-space colours
    #: for every model. The per-item value is the end point of CoDA's curve (25 %), whose mean over items is the
    #: number CoDA reports; CoDA's 128 sample points only draw the curve. ``readout: probability`` reads the
    #: probability the way the model was trained (its spec: sigmoid for CoDA-Nets, softmax for cross-entropy models).
    defaults = {"fraction": 0.25, "baseline": "auto", "readout": "sigmoid", "max_batch": 256}
    needs_model = True

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        self.check_number("fraction", 0, maximum=1)
        check_choice("metric", self.name, "baseline", self.params["baseline"], ("auto", *BASELINES))
        check_choice("metric", self.name, "readout", self.params["readout"], ("sigmoid", "softmax", "probability"))
        self.check_number("max_batch", 1, integer=True)

    def score(self, batch: ScoringBatch) -> np.ndarray:
        p, images, model = self.params, batch.images, self.model(batch)
        kind = getattr(getattr(model, "spec", None), "probability", "softmax") if p["readout"] == "probability" \
            else p["readout"]
        inputs, fill, forward = self.removal_space(model, images)
        height, width = images.shape[-2:]
        # least important first (ties row-major): one selection per item, no sort (CoDA sorts every pixel)
        removed = top_pixels(-batch.maps.to(images.device), int(p["fraction"] * height * width))
        removed = removed.reshape(-1, 1, height, width)

        def perturb(i: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
            return select(removed.index_select(0, i), fill, inputs.index_select(0, i))

        readout = target_readout(batch.targets.to(images.device), kind)
        curves = perturbation_curves(forward, perturb, readout, len(images), 1, p["max_batch"], images.device)
        return as_numpy(curves[:, 0])

    def removal_space(self, model: nn.Module, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, nn.Module]:
        """``(inputs, fill, forward)``: a removed pixel is ``fill`` in ``inputs``, which ``forward`` classifies."""
        baseline = self.params["baseline"]
        if baseline == "auto" and getattr(getattr(model, "spec", None), "family", "cnn") == "coda":
            encoded = EncodedCoDA(model)
            inputs = encoded.encode(images)
            return inputs, inputs.new_zeros(1, inputs.shape[1], 1, 1), encoded
        return images, baseline_colour(model, "black" if baseline == "auto" else baseline, images), model


@register_metric("infidelity")
class Infidelity(Metric):
    """Expected squared error between the map's linear prediction and the logit change under noise (Yeh et al. 2019)."""

    citation = (
        "Yeh, Hsieh, Suggala, Inouye & Ravikumar. On the (In)fidelity and Sensitivity of Explanations. "
        "NeurIPS 2019. arXiv:1901.09392 (protocol of github.com/chihkuanyeh/saliency_evaluation)"
    )
    #: the authors' "Gaussian" (noisy baseline) perturbation: the perturbed input is the black baseline plus
    #: N(0, 0.2^2) noise, clipped to [0, 1] (I = x - x_tilde), on every pixel and channel; 10000 samples per
    #: image; the map is first scaled by the optimal beta = E[I.phi dF] / E[(I.phi)^2] (their code; Captum's
    #: ``normalize=True``). F is the target logit. An [H,W] map acts on every channel: I.phi = sum phi_hw I_chw.
    defaults = {"n_samples": 10000, "noise_std": 0.2, "optimal_scaling": True, "seed": 0, "max_batch": 256}
    needs_model = True
    higher_is_better = False

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        self.check_number("n_samples", 1, integer=True)
        self.check_number("noise_std", 0)
        self.check_number("seed", 0, integer=True)
        self.check_number("max_batch", 1, integer=True)
        if not isinstance(self.params["optimal_scaling"], bool):
            raise ParamError(f"metric {self.name!r}: optimal_scaling must be true or false")

    def samples(self, batch: ScoringBatch) -> tuple[torch.Tensor, torch.Tensor]:
        """``(I.phi, F(x) - F(x - I))``, each ``[N, n_samples]``."""
        p, images, model = self.params, batch.images, self.model(batch)
        device = images.device
        maps = batch.maps.to(device=device, dtype=images.dtype)[:, None]
        targets = batch.targets.to(device)
        generator = torch.Generator(device=device).manual_seed(p["seed"])
        with torch.inference_mode():
            logits = model(images).gather(1, targets[:, None]).squeeze(1)

        def perturb(i: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
            noise = torch.randn((len(i), *images.shape[1:]), generator=generator, dtype=images.dtype, device=device)
            return (p["noise_std"] * noise).clamp(0, 1)

        def readout(i: torch.Tensor, inputs: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
            predicted = ((images.index_select(0, i) - inputs) * maps.index_select(0, i)).sum(dim=(1, 2, 3))
            change = logits[i] - out.gather(1, targets[i, None]).squeeze(1)
            return torch.stack([predicted, change], dim=1)

        pairs = perturbation_curves(model, perturb, readout, len(images), p["n_samples"], p["max_batch"], device)
        return pairs[..., 0].double(), pairs[..., 1].double()

    def score(self, batch: ScoringBatch) -> np.ndarray:
        predicted, change = self.samples(batch)
        if self.params["optimal_scaling"]:
            energy = (predicted**2).mean(dim=1, keepdim=True)
            covariance = (predicted * change).mean(dim=1, keepdim=True)
            beta = torch.where(energy > 0, covariance / energy.clamp(min=1e-300), 0.0)
            predicted = beta * predicted
        return as_numpy(((change - predicted) ** 2).mean(dim=1))
