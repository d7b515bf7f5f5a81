"""The report's section on how far to trust each metric: its meta-evaluation and its resilient ranks.

Reads the tables of the ``meta_evaluate`` jobs (``results/{dataset}/{model}/meta/meta_evaluation.parquet`` and
``resilience.parquet``, written by :mod:`salbench.meta_jobs`): per metric and perturbation kind the MetaQuantus
components (Hedström et al., TMLR 2023) with the benchmark's verdict, and per metric and method the mean
resilience rank over the metric's declared settings (Wickstrøm, Höhne & Hedström 2024).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from ..meta_config import COMPONENTS
from ..store import read_table

ANCHOR = "metric-trust"


@dataclass(frozen=True)
class MetaSection:
    """The meta-evaluation rows (one per dataset, model, metric, kind) and resilience rows (per metric, method)."""

    meta: pd.DataFrame
    resilience: pd.DataFrame


def load_section(paths: list[Path]) -> MetaSection | None:
    """The section from the jobs' tables, told apart by their columns (each job writes both; None when no job
    ran)."""
    tables = [read_table(p) for p in paths]
    meta = [t for t in tables if "MC" in t.columns]
    resilience = [t for t in tables if "mrr" in t.columns]
    if not meta:
        return None
    return MetaSection(pd.concat(meta, ignore_index=True),
                       pd.concat(resilience, ignore_index=True) if resilience else pd.DataFrame())


def _verdict(row: pd.Series) -> str:
    failed = [name for name, flag in (("noise resilience", row.fails_nr), ("adversarial reactivity", row.fails_ar))
              if flag]
    if failed:
        return "fails " + " and ".join(failed)
    return "trust with care (MC close to a constant metric's 0.5)" if row.flagged else "trustworthy"


def pair_tables(section: MetaSection) -> list[dict[str, Any]]:
    """Per (data set, model): one row per metric and perturbation kind (its components, MC with its spread, the
    smallest subsets and the verdict), and per metric with a declared grid its resilient ranks."""
    out = []
    for (dataset, model), rows in section.meta.groupby(["dataset", "model"], sort=True):
        meta = [{"metric": str(r.metric), "kind": str(r.kind), **{c: float(getattr(r, c)) for c in COMPONENTS},
                 "MC": float(r.MC), "MC_std": float(r.MC_std), "subset_nr_min": int(r.subset_nr_min),
                 "subset_ar_min": int(r.subset_ar_min), "verdict": _verdict(r)}
                for r in rows.sort_values(["metric", "kind"]).itertuples()]
        out.append({"dataset": str(dataset), "model": str(model), "meta": meta,
                    "resilience": _resilience(section.resilience, dataset, model)})
    return out


def _resilience(table: pd.DataFrame, dataset: str, model: str) -> list[dict[str, Any]]:
    """Per metric with a declared grid: its settings, the rankings' concordance (Kendall's W, mean pairwise tau)
    and each method's mean resilience rank, order, rank range and spread (best MRR first)."""
    if table.empty:
        return []
    rows = table[(table["dataset"] == dataset) & (table["model"] == model)]
    out = []
    for metric, group in rows.groupby("metric", sort=True):
        first = group.iloc[0]
        out.append({"metric": str(metric), "n_settings": int(first.n_settings), "kendall_w": float(first.kendall_w),
                    "mean_tau": float(first.mean_tau),
                    "methods": [{"method": str(r.method), "mrr": float(r.mrr), "mrr_rank": int(r.mrr_rank),
                                 "rank_min": float(r.rank_min), "rank_max": float(r.rank_max),
                                 "rank_std": float(r.rank_std)} for r in group.sort_values("mrr").itertuples()]})
    return out
