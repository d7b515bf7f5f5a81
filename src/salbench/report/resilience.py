"""Rankings that survive a metric's own settings: mean resilience rank over a declared hyperparameter grid.

Wickstrøm, Höhne & Hedström, "From Flexibility to Manipulation: The Slippery Slope of XAI Evaluation" (ECCV 2024
Workshop on Explainable Computer Vision, arXiv:2412.05592) show that a metric's hyperparameters (deletion
baseline, step count, pointing tolerance, ...) can be chosen to favour a method. The benchmark's answer
(``../shared/references/newer-checks.md`` §5): rank the methods under every declared setting ``h`` of the grid
``H`` and report, per method,

- ``mrr``: the mean resilience rank, the mean over ``h`` of its rank (1 = best, ties share the average rank,
  each metric in its own direction); the final ordering is by MRR;
- ``rank_min``/``rank_max``: its rank range, and ``rank_std`` the (population) standard deviation of its rank;

and per metric the stability of the rankings: Kendall's W (concordance of the ``|H|`` rankings, tie-corrected)
and the mean pairwise Kendall tau-b. The aggregation order is *mean, then rank*: per setting, each method's
score is its mean over items, then the methods are ranked. A setting with a NaN score for any method is dropped
for all methods (``n_settings`` counts the rest): one added setting can move an MRR by at most
``(L - 1) / (|H| + 1)``.
"""

from __future__ import annotations

import itertools
import math
from typing import Mapping

import numpy as np
import pandas as pd
from scipy.stats import kendalltau, rankdata

RESILIENCE_COLUMNS = ["dataset", "model", "metric", "method", "mrr", "mrr_rank", "rank_min", "rank_max", "rank_std",
                      "kendall_w", "mean_tau", "n_settings", "n_methods"]


def setting_ranks(scores: np.ndarray, higher_is_better: bool) -> np.ndarray:
    """Ranks ``[H, L]`` of L methods' scores ``[H, L]`` per setting: 1 = best, ties share the average rank."""
    oriented = -scores if higher_is_better else scores
    return rankdata(oriented, axis=1, method="average").astype(float)


def kendalls_w(ranks: np.ndarray) -> float:
    """Kendall's coefficient of concordance of ``H`` rankings ``[H, L]`` of L items, corrected for ties.

    ``W = 12 S / (H^2 (L^3 - L) - H sum_j T_j)``, with ``S`` the squared deviations of the items' rank sums from
    their mean and ``T_j = sum (t^3 - t)`` over the tie groups of ranking ``j``. NaN when it is undefined (every
    ranking all-tied, or fewer than 2 items).
    """
    settings, items = ranks.shape
    if items < 2 or settings < 1:
        return math.nan
    sums = ranks.sum(axis=0)
    spread = float(((sums - sums.mean()) ** 2).sum())
    ties = sum(float((counts ** 3 - counts).sum()) for counts in (np.unique(row, return_counts=True)[1]
                                                                   for row in ranks))
    denominator = settings ** 2 * (items ** 3 - items) - settings * ties
    return 12.0 * spread / denominator if denominator > 0 else math.nan


def mean_pairwise_tau(ranks: np.ndarray) -> float:
    """Mean Kendall tau-b over every pair of settings' rankings (NaN pairs, e.g. an all-tied ranking, left out)."""
    taus = [kendalltau(a, b).statistic for a, b in itertools.combinations(ranks, 2)]
    finite = [t for t in taus if np.isfinite(t)]
    return float(np.mean(finite)) if finite else math.nan


def resilient_ranks(scores: np.ndarray, higher_is_better: bool) -> dict[str, np.ndarray | float | int]:
    """MRR and its companions for L methods' scores ``[H, L]`` over H settings (NaN settings dropped)."""
    kept = scores[np.isfinite(scores).all(axis=1)]
    methods = scores.shape[1]
    if kept.shape[0] == 0:
        missing = np.full(methods, math.nan)
        return {"mrr": missing, "mrr_rank": missing, "rank_min": missing, "rank_max": missing, "rank_std": missing,
                "kendall_w": math.nan, "mean_tau": math.nan, "n_settings": 0}
    ranks = setting_ranks(kept, higher_is_better)
    mrr = ranks.mean(axis=0)
    return {"mrr": mrr, "mrr_rank": rankdata(mrr, method="average").astype(float), "rank_min": ranks.min(axis=0),
            "rank_max": ranks.max(axis=0), "rank_std": ranks.std(axis=0), "kendall_w": kendalls_w(ranks),
            "mean_tau": mean_pairwise_tau(ranks), "n_settings": int(kept.shape[0])}


def manipulating_setting(scores: np.ndarray, focus: int, higher_is_better: bool) -> int:
    """The setting an evaluator favouring method ``focus`` would pick (the paper's manipulation objective).

    ``J(h) = s(focus, h) - mean over the other methods of s(m, h)``; the pick is ``argmax J`` for a
    higher-is-better metric and ``argmin J`` otherwise (settings with a NaN score excluded).
    """
    others = np.delete(scores, focus, axis=1).mean(axis=1)
    gain = scores[:, focus] - others
    gain = np.where(np.isfinite(gain), gain, -np.inf if higher_is_better else np.inf)
    return int(np.argmax(gain) if higher_is_better else np.argmin(gain))


def resilience_table(aggregates: pd.DataFrame, higher_is_better: Mapping[str, bool]) -> pd.DataFrame:
    """One row per (dataset, model, metric, method) of :data:`RESILIENCE_COLUMNS`.

    ``aggregates`` holds one row per (dataset, model, metric, setting, method) with the method's mean score
    ``value`` under that setting of the metric's grid; ``higher_is_better`` maps each metric to its direction.
    """
    frames = []
    for (dataset, model, metric), group in aggregates.groupby(["dataset", "model", "metric"], sort=True):
        if metric not in higher_is_better:
            raise KeyError(f"metric {metric!r} has no direction (higher_is_better) in the resilience table")
        matrix = group.pivot(index="setting", columns="method", values="value")
        stats = resilient_ranks(matrix.to_numpy(dtype=float), higher_is_better[metric])
        frames.append(pd.DataFrame({"dataset": dataset, "model": model, "metric": metric,
                                    "method": matrix.columns.astype(str), "n_methods": matrix.shape[1],
                                    **{key: stats[key] for key in ("mrr", "mrr_rank", "rank_min", "rank_max",
                                                                   "rank_std", "kendall_w", "mean_tau",
                                                                   "n_settings")}}))
    if not frames:
        return pd.DataFrame(columns=RESILIENCE_COLUMNS)
    return pd.concat(frames, ignore_index=True)[RESILIENCE_COLUMNS]
