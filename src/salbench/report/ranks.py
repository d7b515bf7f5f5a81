"""Rank statistics of the report: methods ranked per metric, with a paired bootstrap, and rank agreement.

Evaluation metrics for saliency methods are known to disagree about which method is best
(Tomsett, Harborne, Chakraborty, Gurram & Preece, "Sanity Checks for Saliency Metrics", AAAI 2020,
arXiv:1912.00818; Hedström et al., Quantus, JMLR 24(34), 2023). Two numbers make that visible:

- **ranks**: per (dataset, model, metric) the methods are ranked by the metric's aggregate (rank 1 =
  best, respecting ``higher_is_better``, ties share the average rank). Their uncertainty comes from a
  *paired* bootstrap over items: each resample draws items with replacement once, and every method is
  aggregated over the same draw (only its scorable items, as the metric prescribes: "mean" or
  "class_mean"), so a method that is better on every item keeps rank 1 in every resample.
- **rank agreement**: per (dataset, model), Kendall's tau-b between every pair of metrics' method
  orderings, each metric oriented so that larger is better: +1 = same ordering, -1 = reversed.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
from scipy.stats import kendalltau

from ..stats import CI_LEVEL, group_rng, paired_bootstrap, percentile_interval, rank_rows

RANK_COLUMNS = ["dataset", "model", "metric", "method", "rank", "rank_mean", "rank_low", "rank_high", "p_best",
                "n_ranked"]
AGREEMENT_COLUMNS = ["dataset", "model", "metric_a", "metric_b", "tau", "p_value", "n_methods"]


def fmt_rank(rank: float | None) -> str:
    """A rank as text: whole ranks without decimals, shared (average) ranks with one, "n/a" for none."""
    if rank is None or math.isnan(rank):
        return "n/a"
    return f"{rank:.0f}" if float(rank).is_integer() else f"{rank:.1f}"


def bootstrap_ranks(values: np.ndarray, targets: np.ndarray, how: str, higher_is_better: bool, n_boot: int,
                    rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Point ranks [M], bootstrap ranks [B, M] and best flags [B, M] of M methods' per-item ``values`` [M, N].

    Items are resampled once per bootstrap replicate and shared by all methods (paired ranks).
    """
    sign = 1.0 if higher_is_better else -1.0
    point, boot = paired_bootstrap(values, targets, how, n_boot, rng)
    oriented = np.nan_to_num(sign * boot, nan=-np.inf)
    return rank_rows(sign * point), rank_rows(oriented), oriented == oriented.max(axis=1, keepdims=True)


def method_ranks(scores: pd.DataFrame, metric_info: dict[str, dict[str, Any]], n_boot: int = 1000,
                 seed: int = 0, level: float = CI_LEVEL) -> pd.DataFrame:
    """One row per (dataset, model, metric, method) of a tidy score table: rank and its bootstrap distribution.

    ``rank`` is the method's rank by the aggregate over all scorable items; ``rank_mean`` its mean rank
    over ``n_boot`` paired resamples of the items, ``rank_low``/``rank_high`` the ``level`` percentile
    interval of those ranks (outward: observed ranks), ``p_best`` the share of resamples in which it is
    best (ties included). Methods with no scorable item are not ranked (NaN); ``n_ranked`` counts the rest.
    """
    frames = []
    for (dataset, model, metric), group in scores.groupby(["dataset", "model", "metric"], sort=True):
        info = metric_info[metric]
        values, targets, methods = _item_matrix(group)
        ranked = ~np.isnan(values).all(axis=1)
        frame = pd.DataFrame({"dataset": dataset, "model": model, "metric": metric, "method": methods,
                              "n_ranked": int(ranked.sum())}).reindex(columns=RANK_COLUMNS)
        frames.append(frame)
        if not ranked.any():
            continue
        point, boot, best = bootstrap_ranks(values[ranked], targets, info["aggregate"], bool(info["higher_is_better"]),
                                            n_boot, group_rng(seed, (dataset, model, metric, "ranks")))
        frame.loc[ranked, "rank"] = point
        frame.loc[ranked, "rank_mean"] = boot.mean(axis=0)
        frame.loc[ranked, "rank_low"], frame.loc[ranked, "rank_high"] = percentile_interval(boot, level, outward=True)
        frame.loc[ranked, "p_best"] = best.mean(axis=0)
    table = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=RANK_COLUMNS)
    return table.astype({c: "float64" for c in RANK_COLUMNS[4:9]} | {"n_ranked": "int64"})


def _item_matrix(group: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Per-item values [M, N] (NaN = not scored), item targets [N] and method names of one metric's scores."""
    targets = group.groupby("item", sort=True)["target"].agg(["min", "max"])
    clash = targets["min"] != targets["max"]
    if clash.any():
        raise ValueError(f"item {clash.idxmax()!r} has different targets across methods")
    table = group.pivot(index="method", columns="item", values="value").sort_index().reindex(columns=targets.index)
    return table.to_numpy(dtype=float), targets["min"].to_numpy(), [str(m) for m in table.index]


def oriented_values(summary: pd.DataFrame) -> pd.DataFrame:
    """The summary's values as a method x metric table per (dataset, model) index, larger = better."""
    sign = np.where(summary["higher_is_better"], 1.0, -1.0)
    return (summary.assign(oriented=summary["value"] * sign)
            .pivot(index=["dataset", "model", "method"], columns="metric", values="oriented"))


def kendall_matrix(oriented: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Kendall tau-b, its p-value and the methods compared, for every pair of columns of a method x metric table.

    Each pair uses the methods with a value under both metrics; fewer than two, or a constant column,
    gives NaN.
    """
    metrics = list(oriented.columns)
    tau = pd.DataFrame(np.nan, index=metrics, columns=metrics)
    p_value, n_methods = tau.copy(), pd.DataFrame(0, index=metrics, columns=metrics)
    for i, a in enumerate(metrics):
        for b in metrics[i:]:
            both = oriented[[a, b]].dropna()
            n_methods.loc[a, b] = n_methods.loc[b, a] = len(both)
            if len(both) >= 2:
                result = kendalltau(both[a], both[b])
                tau.loc[a, b] = tau.loc[b, a] = result.statistic
                p_value.loc[a, b] = p_value.loc[b, a] = result.pvalue
    return tau, p_value, n_methods


def rank_agreement(summary: pd.DataFrame, metric_order: list[str] | None = None) -> pd.DataFrame:
    """Long table of Kendall tau between every ordered pair of metrics, per (dataset, model) of a summary.

    Metrics are oriented "larger = better" first, so tau compares which methods each metric calls better.
    ``metric_order`` fixes the order of the pairs (default: sorted names).
    """
    rows = []
    for (dataset, model), table in oriented_values(summary).groupby(level=["dataset", "model"], sort=True):
        table = table.droplevel(["dataset", "model"])
        order = [m for m in (metric_order or sorted(table.columns)) if m in table.columns]
        tau, p_value, n_methods = kendall_matrix(table[order])
        for a in order:
            for b in order:
                rows.append({"dataset": dataset, "model": model, "metric_a": a, "metric_b": b, "tau": tau.loc[a, b],
                             "p_value": p_value.loc[a, b], "n_methods": int(n_methods.loc[a, b])})
    return pd.DataFrame(rows, columns=AGREEMENT_COLUMNS)
