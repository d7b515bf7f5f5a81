"""The study's statistics in one place: bootstrap intervals, paired resamples, ranks, min-max scaling, Spearman.

Metrics, sanity checks, claims and report sections all call these, so every interval in the report comes
from one resampling scheme and every map comparison from one scaling and one rank correlation.

- **Resampling**: items are drawn with replacement; a draw is held as a weight per item (how often it was
  drawn: a multinomial draw of ``n`` over equal probabilities, the same law as ``n`` uniform indices), so one
  draw applies to several methods at once (a *paired* bootstrap: differences and ranks) and to aggregates
  other than the mean ("class_mean": the mean over classes of the per-class mean, as TorchRay's pointing game).
- **Intervals**: percentile (Efron & Tibshirani 1993, ch. 13) or BCa, bias-corrected and accelerated (ibid.,
  ch. 14; acceleration from the jackknife, as :func:`scipy.stats.bootstrap` computes it).
- **Map arithmetic**: :func:`min_max` and :func:`spearman` take numpy arrays or torch tensors (torch is never
  imported here: the report is torch-free).

Every generator is seeded by the caller (:func:`group_rng` derives one per table group from the study seed).
"""

from __future__ import annotations

import hashlib
from typing import Any, Callable, Iterable, Iterator

import numpy as np

#: the report's interval level
CI_LEVEL = 0.95
#: resampled item weights held in memory at once (bounds the bootstrap's memory on large data sets)
BOOTSTRAP_BLOCK = 2_000_000
#: interval methods of :func:`bootstrap_interval`
INTERVAL_METHODS = ("percentile", "bca")
#: aggregates of per-item values (a metric's ``aggregate``)
AGGREGATES = ("mean", "class_mean")


def group_rng(seed: int, key: Iterable[str]) -> np.random.Generator:
    """A generator seeded by ``seed`` and a group's names, so a group's interval ignores other groups."""
    digest = hashlib.sha256("\x1f".join(key).encode()).digest()
    return np.random.default_rng([seed, int.from_bytes(digest[:8], "little")])


def resample_weights(n_items: int, n_boot: int, rng: np.random.Generator) -> Iterator[np.ndarray]:
    """``n_boot`` item draws with replacement as weight rows ``[b, n_items]``, yielded in memory-bounded blocks."""
    block = max(1, BOOTSTRAP_BLOCK // max(n_items, 1))
    probabilities = np.full(n_items, 1.0 / max(n_items, 1))
    for start in range(0, n_boot, block):
        yield rng.multinomial(n_items, probabilities, size=min(block, n_boot - start)).astype(float)


def paired_aggregates(values: np.ndarray, targets: np.ndarray | None, how: str, weights: np.ndarray) -> np.ndarray:
    """Aggregates ``[B, M]`` of M methods' per-item ``values`` ``[M, N]`` under B item weightings ``[B, N]``.

    A weighting counts how often each item was drawn (all ones = the plain aggregate). NaN values are items a
    method cannot score: they are left out of that method's aggregate only. ``how`` is "mean" (weighted mean)
    or "class_mean" (mean over the classes drawn of the weighted per-class mean; needs ``targets``); an
    aggregate with no scorable item drawn is NaN.
    """
    scorable = ~np.isnan(values)
    filled = np.where(scorable, values, 0.0).T  # [N, M]
    if how == "mean":
        return _ratio(weights @ filled, weights @ scorable.T.astype(float))
    if how != "class_mean":
        raise ValueError(f"unknown aggregate {how!r}; allowed: {', '.join(AGGREGATES)}")
    if targets is None:
        raise ValueError("aggregate 'class_mean' needs the items' targets")
    total = np.zeros((weights.shape[0], values.shape[0]))
    drawn = np.zeros_like(total)
    for cls in np.unique(targets):
        members = targets == cls
        mean = _ratio(weights[:, members] @ filled[members], weights[:, members] @ scorable[:, members].T.astype(float))
        total += np.nan_to_num(mean)
        drawn += ~np.isnan(mean)
    return _ratio(total, drawn)


def paired_bootstrap(values: np.ndarray, targets: np.ndarray | None, how: str, n_boot: int,
                     rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Point aggregates ``[M]`` and bootstrap aggregates ``[n_boot, M]`` of ``values`` ``[M, N]``: every method is
    aggregated over the same item draws, so differences and ranks between methods are paired."""
    values = np.asarray(values, dtype=np.float64)
    n = values.shape[1]
    point = paired_aggregates(values, targets, how, np.ones((1, n)))[0]
    if n == 0:
        return point, np.full((n_boot, values.shape[0]), np.nan)
    boot = [paired_aggregates(values, targets, how, w) for w in resample_weights(n, n_boot, rng)]
    return point, np.concatenate(boot)


def percentile_interval(boot: np.ndarray, level: float = CI_LEVEL, axis: int = 0,
                        outward: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """The ``level`` percentile interval of bootstrap statistics along ``axis`` (NaN draws left out);
    ``outward`` takes observed values (ranks) rather than interpolating between them."""
    tail = (1.0 - level) / 2.0
    method = ("lower", "higher") if outward else ("linear", "linear")
    return (np.nanquantile(boot, tail, axis=axis, method=method[0]),
            np.nanquantile(boot, 1.0 - tail, axis=axis, method=method[1]))


def bootstrap_interval(values: Any, *, n_boot: int, rng: np.random.Generator, targets: np.ndarray | None = None,
                       how: str = "mean", level: float = CI_LEVEL, method: str = "percentile"
                       ) -> tuple[float, float, float]:
    """``(aggregate, low, high)`` of per-item ``values`` (NaN items left out) with its bootstrap ``level`` interval.

    ``method`` "percentile" or "bca" (bias-corrected and accelerated; the acceleration from the jackknife, as
    :func:`scipy.stats.bootstrap`); all NaN when no value is finite.
    """
    if method not in INTERVAL_METHODS:
        raise ValueError(f"unknown interval method {method!r}; allowed: {', '.join(INTERVAL_METHODS)}")
    data = np.asarray(values, dtype=np.float64).ravel()
    keep = ~np.isnan(data)
    data = data[keep]
    targets = None if targets is None else np.asarray(targets).ravel()[keep]
    if data.size == 0:
        return float("nan"), float("nan"), float("nan")
    point, boot = paired_bootstrap(data[None], targets, how, n_boot, rng)
    boot = boot[:, 0]
    if method == "percentile":
        low, high = percentile_interval(boot, level)
    else:
        low, high = _bca(data, targets, how, float(point[0]), boot, level)
    return float(point[0]), float(low), float(high)


def _bca(data: np.ndarray, targets: np.ndarray | None, how: str, point: float, boot: np.ndarray,
         level: float) -> tuple[float, float]:
    """BCa interval ends from the bootstrap distribution ``boot`` and the jackknife of the aggregate."""
    from scipy.stats import norm

    boot = boot[~np.isnan(boot)]
    bias = norm.ppf(np.mean(boot < point) + np.mean(boot == point) / 2)
    n = data.size
    jack = np.concatenate([paired_aggregates(data[None], targets, how, 1.0 - np.eye(n)[start:start + 256])[:, 0]
                           for start in range(0, n, 256)])
    spread = jack.mean() - jack
    denominator = 6.0 * np.sum(spread**2) ** 1.5
    acceleration = np.sum(spread**3) / denominator if denominator > 0 else 0.0
    if not np.isfinite(bias):  # every draw on one side of the point: no correction is defined
        return percentile_interval(boot, level)
    z = norm.ppf([(1.0 - level) / 2.0, (1.0 + level) / 2.0])
    shifted = bias + (bias + z) / (1.0 - acceleration * (bias + z))
    low, high = np.quantile(boot, norm.cdf(shifted))
    return float(low), float(high)


def statistic_interval(values: Any, statistic: Callable[[np.ndarray], np.ndarray], *, n_boot: int,
                       rng: np.random.Generator, level: float = CI_LEVEL) -> tuple[float, float, float]:
    """``(statistic, low, high)`` for a statistic that is no weighted aggregate (the median): ``statistic`` maps
    ``[B, N]`` resampled values to ``[B]``; finite values only; percentile interval."""
    data = np.asarray(values, dtype=np.float64).ravel()
    data = data[np.isfinite(data)]
    if data.size == 0:
        return float("nan"), float("nan"), float("nan")
    boot = np.concatenate([statistic(_drawn_samples(data, w)) for w in resample_weights(data.size, n_boot, rng)])
    low, high = percentile_interval(boot, level)
    return float(statistic(data[None])[0]), float(low), float(high)


def _drawn_samples(data: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """The resampled values ``[B, N]``: row b repeats each item as often as ``weights[b]`` counts it drawn."""
    b, n = weights.shape
    drawn = np.repeat(np.arange(b * n), weights.astype(np.int64).ravel())
    return np.tile(data, b)[drawn].reshape(b, n)


def rank_rows(oriented: np.ndarray) -> np.ndarray:
    """Rank each row's entries, 1 = largest; ties share their average rank; NaN entries rank last (tied)."""
    from scipy.stats import rankdata

    return rankdata(-np.nan_to_num(oriented, nan=-np.inf), axis=-1, method="average").astype(float)


def _ratio(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    """``numerator / denominator``, NaN where the denominator is 0."""
    return np.divide(numerator, denominator, out=np.full_like(numerator, np.nan), where=denominator > 0)


# ------------------------------------------------------------------ map arithmetic (numpy arrays or torch tensors)


def min_max(maps: Any, axis: int | tuple[int, ...] = -1, constant: str = "zero") -> Any:
    """``(x - min) / (max - min)`` along ``axis`` of an array or tensor, in its dtype.

    A constant slice (max == min) becomes 0 (``constant="zero"``) or stays as it is (``"keep"``: the layer-wise
    authors' code). Used by the localisation metrics, MDM's fusion, the sanity measures and the report.
    """
    if constant not in ("zero", "keep"):
        raise ValueError(f"unknown constant rule {constant!r}; allowed: zero, keep")
    xp = _namespace(maps)
    if xp is np:
        low, high = np.amin(maps, axis=axis, keepdims=True), np.amax(maps, axis=axis, keepdims=True)
    else:
        low, high = xp.amin(maps, dim=axis, keepdim=True), xp.amax(maps, dim=axis, keepdim=True)
    span = high - low
    varies = span > 0
    scaled = (maps - low) / xp.where(varies, span, xp.ones_like(span))
    return xp.where(varies, scaled, xp.zeros_like(scaled) if constant == "zero" else maps)


def spearman(a: Any, b: Any) -> Any:
    """Spearman's rho of each row pair of ``[N, L]`` arrays or tensors (average ranks for ties, as
    :func:`scipy.stats.spearmanr`), ``[N]`` float64 of the input's kind; NaN for a constant row."""
    return pearson(average_ranks(a), average_ranks(b))


def average_ranks(values: Any) -> Any:
    """Ranks (1-based, float64) of each row of ``[N, L]``, ties sharing their mean rank (scipy's ``rankdata``).

    Arrays and CPU tensors go through scipy; other tensors through a batched port on their device (the sanity
    checks rank every randomisation stage's maps on the GPU), tested against scipy."""
    from scipy.stats import rankdata  # here: a job that ranks nothing does not import scipy (about 1 s)

    xp = _namespace(values)
    if xp is np:
        return rankdata(np.asarray(values, dtype=np.float64), axis=1)
    if values.device.type == "cpu":  # scipy's vectorised sort is 3-4x torch's on the CPU
        return xp.from_numpy(rankdata(values.detach().to(xp.float64).numpy(), axis=1))
    return ranks_on_device(values)


def ranks_on_device(values: Any) -> Any:
    """:func:`average_ranks` of a ``[N, L]`` tensor computed by torch on its own device (sort, tie runs)."""
    import torch as xp

    length = values.shape[1]
    ordered, order = values.sort(dim=1)
    position = xp.arange(length, device=values.device).expand_as(ordered)
    differs = ordered[:, 1:] != ordered[:, :-1]
    starts = xp.cat([xp.ones_like(differs[:, :1]), differs], dim=1)  # first of a run of ties
    ends = xp.cat([differs, xp.ones_like(differs[:, :1])], dim=1)  # last of a run
    first = xp.where(starts, position, 0).cummax(dim=1).values
    last = xp.where(ends, position, length).flip(1).cummin(dim=1).values.flip(1)
    sorted_ranks = (first + last).to(xp.float64) / 2 + 1
    return xp.empty_like(sorted_ranks).scatter_(1, order, sorted_ranks)


def pearson(a: Any, b: Any) -> Any:
    """Pearson correlation over the last dim of broadcastable ``[..., L]`` arrays or tensors (NaN for a constant
    row)."""
    xp = _namespace(a)
    a, b = xp.broadcast_arrays(a, b) if xp is np else xp.broadcast_tensors(a, b)
    a = a - a.mean(-1, keepdims=True) if xp is np else a - a.mean(dim=-1, keepdim=True)
    b = b - b.mean(-1, keepdims=True) if xp is np else b - b.mean(dim=-1, keepdim=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (a * b).sum(-1) / xp.sqrt((a * a).sum(-1) * (b * b).sum(-1))


def _namespace(x: Any) -> Any:
    """numpy, or torch for a tensor (imported only when a tensor is passed)."""
    if type(x).__module__.startswith("torch"):
        import torch

        return torch
    return np
