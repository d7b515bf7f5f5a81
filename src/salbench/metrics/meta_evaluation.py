"""How far to trust a metric: MetaQuantus meta-evaluation (Hedström et al., "The Meta-Evaluation Problem in
Explainable AI: Identifying Reliable Estimators with MetaQuantus", TMLR 2023; ``../shared/references/newer-checks.md`` §4).

A metric is *noise resilient* (NR) when minor perturbations, which should not change explanation quality, leave
its scores and its ranking of methods in place, and *adversarially reactive* (AR) when disruptive perturbations
move them. Two perturbation tests probe it, each in a minor (NR) and a disruptive (AR) variant:

- **Model perturbation test** (MPT): every parameter tensor of a copy of the model is multiplied elementwise by
  ``N(1, sigma^2)`` (buffers, e.g. the normalisation constants, untouched); the methods explain the perturbed
  model on the clean inputs and the metric scores with the perturbed model.
- **Input perturbation test** (IPT): ``x + U(-eps, eps)``, clipped to the pixel range [0, 1]; the methods explain
  the model on the perturbed inputs and the metric scores them. (MetaQuantus keeps the maps of the clean inputs
  and only hands the metric the perturbed ones, and clips only from below; we re-explain, as the paper
  describes, and keep the inputs valid images.)

Targets are the model's predictions on the clean inputs throughout. For each draw, the subset ``S`` holds the
items whose prediction is unchanged (NR) or changed (AR); every statistic is computed on ``S`` and ``|S|`` is
reported, because a small ``S`` caps IAC_AR (the exact two-sided Wilcoxon floor is ``2^(1-|S|)``) and an empty
one gives NaN (left out of the means, never free credit).

Scores, each in [0, 1], higher = more trustworthy:
- IAC (intra-consistency): the Wilcoxon signed-rank p-value (two-sided, ``zero_method="zsplit"``) between the
  reference and the perturbed scores of one method on ``S``: IAC_NR = p, IAC_AR = 1 - p.
- IEC_NR (inter-consistency): the share of (item, rank position) pairs whose method is the same in the reference
  and the perturbed per-item ordering of the methods (numpy's default ``argsort``, as MetaQuantus).
- IEC_AR: the share of (method, item in S) pairs whose perturbed score is *worse* than the reference in the
  metric's own direction. This is the paper's rule; ``metaquantus`` 0.0.5 scores every metric as
  lower-is-better (``if score_direction:`` is true for "higher" and "lower" alike), which inverts IEC_AR for
  higher-is-better metrics.
- MC = the mean of the four (per iteration: IAC averaged over methods and draws, IEC over draws), computed per
  perturbation kind ("model", "input"); ``MC_std`` is its standard deviation over iterations. A component with
  no answer at all (every subset empty) makes MC NaN, so the row is flagged rather than averaged over three.

Defaults (CPU-sized images in [0, 1] pixel space). MetaQuantus' ImageNet suite uses sigma = 0.001 / 0.5 and
eps = 0.001 / 5.0, the eps in ImageNet-normalised units (1 unit = std ~ 0.226 in pixel units). The multiplicative
sigmas are unitless and kept. eps_NR = 0.001 pixel units (~0.0044 normalised units, a quarter of one 8-bit grey
level: invisible, as intended); eps_AR = 1.0 pixel units (~4.4 normalised units, MetaQuantus' 5.0 is ~1.13 pixel
units): noise as wide as the whole pixel range, which after clipping destroys the image, as 5.0 does. The paper
runs K = 5 draws and 3 iterations.
"""

from __future__ import annotations

import copy
import math
import warnings
from dataclasses import dataclass, field
from typing import Iterator, Mapping, Sequence

import numpy as np
import torch
from scipy.stats import rankdata, wilcoxon
from torch import nn

from ..meta_config import COMPONENTS
from ..methods.base import Method
from .base import Metric, ScoringBatch

KINDS = ("model", "input")
#: one row per (metric, perturbation kind) of the meta-evaluation table
META_COLUMNS = ["metric", "kind", "higher_is_better", *COMPONENTS, "MC", "MC_std", "subset_nr_mean", "subset_nr_min",
                "subset_ar_mean", "subset_ar_min", "n_items", "n_methods", "iterations", "perturbations",
                "level_nr", "level_ar", "fails_nr", "fails_ar", "flagged"]


@dataclass(frozen=True)
class PerturbationTest:
    """One test: a perturbation ``kind`` ("model": sigma, "input": eps) at ``level``, minor or ``disruptive``."""

    kind: str
    disruptive: bool
    level: float

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"perturbation kind {self.kind!r} is not one of {', '.join(KINDS)}")
        if not (isinstance(self.level, (int, float)) and self.level > 0):
            raise ValueError(f"{self.name}: the perturbation level must be a number > 0, got {self.level!r}")

    @property
    def name(self) -> str:
        """MetaQuantus' test name, e.g. "Model Resilience Test"."""
        return f"{self.kind.capitalize()} {'Adversary' if self.disruptive else 'Resilience'} Test"


def default_suite(sigma_nr: float = 0.001, sigma_ar: float = 0.5, eps_nr: float = 0.001,
                  eps_ar: float = 1.0) -> tuple[PerturbationTest, ...]:
    """The four tests with this module's pixel-space defaults (see the module docstring for the mapping)."""
    return (PerturbationTest("model", False, sigma_nr), PerturbationTest("model", True, sigma_ar),
            PerturbationTest("input", False, eps_nr), PerturbationTest("input", True, eps_ar))


# --------------------------------------------------------------------------------------------------- statistics


@dataclass
class PerturbedScores:
    """A test's raw results for one metric: ``reference`` [L, n], ``perturbed`` [I, K, L, n], ``subsets`` [I, K, n]."""

    reference: np.ndarray
    perturbed: np.ndarray
    subsets: np.ndarray

    def __post_init__(self) -> None:
        methods, items = self.reference.shape
        if self.perturbed.shape[2:] != (methods, items) or self.subsets.shape != (*self.perturbed.shape[:2], items):
            raise ValueError(f"inconsistent shapes: reference {self.reference.shape}, perturbed "
                             f"{self.perturbed.shape}, subsets {self.subsets.shape}")
        if methods < 2:
            raise ValueError("meta-evaluation needs at least 2 methods (IEC_NR is 1 by construction with one)")


#: SciPy's Wilcoxon runs an exact permutation test (2^n sign flips) when there are ties or zeros and n <= 13
EXACT_TIED_MAX = 13


def signed_rank_p(differences: np.ndarray) -> float:
    """Two-sided Wilcoxon signed-rank p of paired ``differences`` (``zero_method="zsplit"``), as SciPy computes it.

    SciPy's answer for tied or zero differences with n <= 13 is an exact permutation test whose overhead
    (~0.3 s a call) would dominate a meta-evaluation of quantised metrics (pointing game, hit rates). Its null
    distribution is that of ``sum r_i B_i`` over the non-zero differences' ranks ``r_i`` with fair coins
    ``B_i`` (zeros contribute a constant half rank to both sides), which a convolution over doubled ranks (whole
    numbers) gives exactly. Every other case goes to SciPy. One difference with a zero gives p = 1 here, where
    SciPy refuses: no evidence of a change. A NaN difference (a metric without a value for an item, e.g. under a
    disruptive model perturbation) gives NaN, as SciPy's default ``nan_policy="propagate"``.
    """
    d = np.asarray(differences, dtype=np.float64)
    if np.isnan(d).any():
        return math.nan
    magnitudes = np.abs(d)
    tied = (d == 0).any() or np.unique(magnitudes).size < d.size
    if not tied or d.size > EXACT_TIED_MAX:
        return float(wilcoxon(d, zero_method="zsplit", alternative="two-sided").pvalue)
    doubled = np.rint(2 * rankdata(magnitudes)).astype(np.int64)
    counts = np.zeros(int(doubled[d != 0].sum()) + 1)
    counts[0] = 1.0
    for weight in doubled[d != 0]:
        counts[weight:] = counts[weight:] + counts[:-weight].copy()
    observed = int(doubled[d > 0].sum())
    total = counts.sum()
    lower, upper = counts[: observed + 1].sum() / total, counts[observed:].sum() / total
    return float(min(1.0, 2.0 * min(lower, upper)))


def intra_consistency(reference: np.ndarray, perturbed: np.ndarray, subset: np.ndarray, disruptive: bool) -> float:
    """IAC of one method and draw: Wilcoxon p on ``subset`` (NR) or ``1 - p`` (AR); NaN for an empty subset
    (MetaQuantus' p = 0 there would hand AR a free 1)."""
    if not subset.any():
        return math.nan
    p = signed_rank_p(reference[subset] - perturbed[subset])
    return 1.0 - p if disruptive else p


def inter_consistency_nr(reference: np.ndarray, perturbed: np.ndarray, subset: np.ndarray) -> float:
    """IEC_NR of one draw: share of (item in subset, rank position) with the same method in both orderings."""
    if not subset.any():
        return math.nan
    same = np.argsort(reference, axis=0)[:, subset] == np.argsort(perturbed, axis=0)[:, subset]
    return float(same.mean())


def inter_consistency_ar(reference: np.ndarray, perturbed: np.ndarray, subset: np.ndarray,
                         higher_is_better: bool) -> float:
    """IEC_AR of one draw (paper semantics): share of (method, item in subset) whose perturbed score is worse."""
    if not subset.any():
        return math.nan
    worse = perturbed < reference if higher_is_better else perturbed > reference
    return float(worse[:, subset].mean())


def test_components(scores: PerturbedScores, disruptive: bool, higher_is_better: bool) -> tuple[np.ndarray, np.ndarray]:
    """Per-iteration IAC [I] (mean over methods and draws) and IEC [I] (mean over draws) of one test."""
    iterations, draws, methods, _ = scores.perturbed.shape
    iac = np.full((iterations, draws, methods), math.nan)
    iec = np.full((iterations, draws), math.nan)
    for i in range(iterations):
        for k in range(draws):
            subset = scores.subsets[i, k]
            for m in range(methods):
                iac[i, k, m] = intra_consistency(scores.reference[m], scores.perturbed[i, k, m], subset, disruptive)
            if disruptive:
                iec[i, k] = inter_consistency_ar(scores.reference, scores.perturbed[i, k], subset, higher_is_better)
            else:
                iec[i, k] = inter_consistency_nr(scores.reference, scores.perturbed[i, k], subset)
    return _nanmean(iac, axis=(1, 2)), _nanmean(iec, axis=1)


def _nanmean(values: np.ndarray, axis: int | tuple[int, ...] | None = None) -> np.ndarray:
    """``np.nanmean`` without the all-NaN warning (an all-NaN slice stays NaN)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmean(values, axis=axis)


def _nanstd(values: np.ndarray) -> float:
    """``np.nanstd`` of all values without the all-NaN warning."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return float(np.nanstd(values))


@dataclass
class Verdict:
    """The benchmark's acceptance rule (the paper defines none; newer-checks.md §4).

    A metric fails NR when IEC_NR <= ``floor`` or IAC_NR <= ``iac_nr_floor``, fails AR when IAC_AR or IEC_AR
    <= ``floor``, and is flagged when it fails either or its MC does not beat the constant metric's 0.5 by
    ``margin``. IAC_NR has its own, lower floor: under minor noise a stable continuous metric's score
    differences are symmetric, so its Wilcoxon p is uniform with mean 0.5; only a mean p far below 0.5 shows
    a systematic shift. (A metric returning fresh random numbers is caught by IEC_NR, ~1/L.)
    """

    floor: float = 0.5
    iac_nr_floor: float = 0.2
    margin: float = 0.1

    def judge(self, components: Mapping[str, float]) -> dict[str, bool]:
        """``fails_nr``, ``fails_ar`` and ``flagged`` of one row's components (NaN counts as failing)."""
        def at_most(value: float, bound: float) -> bool:
            return not value > bound  # NaN fails

        fails_nr = at_most(components["IEC_NR"], self.floor) or at_most(components["IAC_NR"], self.iac_nr_floor)
        fails_ar = at_most(components["IAC_AR"], self.floor) or at_most(components["IEC_AR"], self.floor)
        flagged = fails_nr or fails_ar or at_most(components["MC"], 0.5 + self.margin)
        return {"fails_nr": fails_nr, "fails_ar": fails_ar, "flagged": flagged}


def meta_consistency(results: Mapping[PerturbationTest, PerturbedScores], higher_is_better: bool,
                     verdict: Verdict = Verdict()) -> list[dict]:
    """One row per perturbation kind present with both a minor and a disruptive test (see :data:`META_COLUMNS`)."""
    rows = []
    for kind in KINDS:
        minor = [t for t in results if t.kind == kind and not t.disruptive]
        major = [t for t in results if t.kind == kind and t.disruptive]
        if not minor or not major:
            continue
        (nr_test,), (ar_test,) = minor, major
        iac_nr, iec_nr = test_components(results[nr_test], False, higher_is_better)
        iac_ar, iec_ar = test_components(results[ar_test], True, higher_is_better)
        per_iteration = np.stack([iac_nr, iac_ar, iec_nr, iec_ar])  # [4, I]
        mc_means = per_iteration.mean(axis=0)  # NaN for an iteration missing a component
        nr, ar = results[nr_test], results[ar_test]
        components = {name: float(_nanmean(values)) for name, values in zip(COMPONENTS, per_iteration)}
        row = {"kind": kind, "higher_is_better": higher_is_better, **components,
               # a missing component makes MC missing: averaging the other three would be free credit
               "MC": float(np.mean(list(components.values()))), "MC_std": _nanstd(mc_means),
               "subset_nr_mean": float(nr.subsets.sum(axis=2).mean()), "subset_nr_min": int(nr.subsets.sum(axis=2).min()),
               "subset_ar_mean": float(ar.subsets.sum(axis=2).mean()), "subset_ar_min": int(ar.subsets.sum(axis=2).min()),
               "n_items": nr.reference.shape[1], "n_methods": nr.reference.shape[0],
               "iterations": nr.perturbed.shape[0], "perturbations": nr.perturbed.shape[1],
               "level_nr": nr_test.level, "level_ar": ar_test.level}
        row.update(verdict.judge(row))
        rows.append(row)
    return rows


# --------------------------------------------------------------------------------------------------- perturbations


def draw_generator(seed: int, test_index: int, iteration: int, draw: int) -> torch.Generator:
    """A CPU generator for one draw, seeded from (seed, test, iteration, draw): reproducible in any order."""
    state = np.random.SeedSequence([seed, test_index, iteration, draw]).generate_state(2, dtype=np.uint32)
    return torch.Generator().manual_seed(int(state[0]) << 32 | int(state[1]))


def perturb_model(model: nn.Module, sigma: float, generator: torch.Generator) -> nn.Module:
    """A copy of ``model`` with every parameter multiplied elementwise by ``N(1, sigma^2)`` (buffers untouched)."""
    perturbed = copy.deepcopy(model)
    with torch.no_grad():
        for param in perturbed.parameters():
            noise = torch.randn(param.shape, generator=generator, dtype=torch.float32)
            param.mul_((1.0 + sigma * noise).to(device=param.device, dtype=param.dtype))
    return perturbed.eval()


def perturb_inputs(images: torch.Tensor, eps: float, generator: torch.Generator) -> torch.Tensor:
    """``images + U(-eps, eps)`` clipped to the pixel range [0, 1]."""
    noise = (torch.rand(images.shape, generator=generator, dtype=torch.float32) * 2.0 - 1.0) * eps
    return (images + noise.to(device=images.device, dtype=images.dtype)).clamp_(0.0, 1.0)


# --------------------------------------------------------------------------------------------------- runner


@dataclass
class Problem:
    """The evaluation problem: a model (eval mode), inputs in [0, 1], optional masks, methods and metrics."""

    model: nn.Module
    images: torch.Tensor
    methods: Mapping[str, Method]
    metrics: Mapping[str, Metric]
    masks: torch.Tensor | None = None
    batch_size: int = 32
    targets: torch.Tensor = field(init=False)

    def __post_init__(self) -> None:
        if len(self.methods) < 2:
            raise ValueError("meta-evaluation needs at least 2 methods (3 or more recommended)")
        self.targets = predict(self.model, self.images, self.batch_size)

    def batches(self, images: torch.Tensor) -> Iterator[slice]:
        """Slices of at most ``batch_size`` items."""
        for lo in range(0, images.shape[0], self.batch_size):
            yield slice(lo, min(lo + self.batch_size, images.shape[0]))

    def score(self, model: nn.Module, images: torch.Tensor) -> dict[str, np.ndarray]:
        """Per metric, the scores [L, n] of every method explaining ``model`` on ``images`` for the clean targets."""
        out = {name: np.zeros((len(self.methods), images.shape[0])) for name in self.metrics}
        for m, method in enumerate(self.methods.values()):
            for sl in self.batches(images):
                maps = method.attribute(model, images[sl], self.targets[sl]).detach().float()
                batch = ScoringBatch(images=images[sl], maps=torch.nan_to_num(maps, nan=0.0, posinf=0.0, neginf=0.0),
                                     targets=self.targets[sl], masks=None if self.masks is None else self.masks[sl],
                                     model=model, method=method)
                for name, metric in self.metrics.items():
                    out[name][m, sl] = np.asarray(metric.score(batch), dtype=np.float64)
        return out


def predict(model: nn.Module, images: torch.Tensor, batch_size: int) -> torch.Tensor:
    """``argmax`` of the model's logits per item."""
    with torch.no_grad():
        return torch.cat([model(images[lo:lo + batch_size]).argmax(dim=1) for lo in range(0, len(images), batch_size)])


def run_test(problem: Problem, test: PerturbationTest, test_index: int, reference: Mapping[str, np.ndarray],
             iterations: int, perturbations: int, seed: int) -> dict[str, PerturbedScores]:
    """Per metric, the :class:`PerturbedScores` of one perturbation test (``iterations`` x ``perturbations`` draws)."""
    n, methods = problem.images.shape[0], len(problem.methods)
    perturbed = {name: np.zeros((iterations, perturbations, methods, n)) for name in problem.metrics}
    subsets = np.zeros((iterations, perturbations, n), dtype=bool)
    for i in range(iterations):
        for k in range(perturbations):
            generator = draw_generator(seed, test_index, i, k)
            if test.kind == "model":
                model, images = perturb_model(problem.model, test.level, generator), problem.images
            else:
                model, images = problem.model, perturb_inputs(problem.images, test.level, generator)
            changed = (predict(model, images, problem.batch_size) != problem.targets).cpu().numpy()
            subsets[i, k] = changed if test.disruptive else ~changed
            for name, scores in problem.score(model, images).items():
                perturbed[name][i, k] = scores
    return {name: PerturbedScores(reference[name], perturbed[name], subsets) for name in problem.metrics}


def meta_evaluate(problem: Problem, tests: Sequence[PerturbationTest] = default_suite(), iterations: int = 3,
                  perturbations: int = 5, seed: int = 0, verdict: Verdict = Verdict()) -> list[dict]:
    """Rows of :data:`META_COLUMNS`, one per (metric, perturbation kind); maps are shared by every metric.

    Every draw is seeded from (``seed``, test index, iteration, draw), so a row is reproducible alone.
    """
    if iterations < 1 or perturbations < 1:
        raise ValueError(f"iterations and perturbations must be >= 1, got {iterations} and {perturbations}")
    reference = problem.score(problem.model, problem.images)
    per_test = {test: run_test(problem, test, index, reference, iterations, perturbations, seed)
                for index, test in enumerate(tests)}
    rows = []
    for name, metric in problem.metrics.items():
        results = {test: scores[name] for test, scores in per_test.items()}
        rows.extend({"metric": name, **row} for row in meta_consistency(results, metric.higher_is_better, verdict))
    return rows
