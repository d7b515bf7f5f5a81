"""The leaderboard: every method's value on every metric with its 95% bootstrap interval and its rank.

One table per data set, model and metric family (localisation against ground-truth masks, faithfulness to the
model under perturbation, complexity of the map). A cell is the metric's aggregate over scorable items
(``mean``, or ``class_mean`` as in the TorchRay pointing game) with a percentile-bootstrap interval over items
(:func:`salbench.report.tables.summarise`), and the method's rank with its paired-bootstrap interval (the ranks
section). A method that does not beat the best control baseline on a metric is marked. The metrics figure draws
the same values as small multiples: one figure per data set and up to :data:`FIGURE_METRICS` metrics of one
family, so that every label stays legible at the page's width. Metrics the score jobs skipped are noted with
their reason. The main table is the summary (one row per data set, model, method and metric).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ._scores import CONFIG_KEYS, StudyScores, pair_anchor, study_scores
from .base import Section, SectionContext, register_section

if TYPE_CHECKING:
    import pandas as pd

NAME = "leaderboard"
#: metrics per small-multiple figure (its width: about the page's at 3.2 inches a panel)
FIGURE_METRICS = 4
#: the score table's column of skipped metrics (``salbench.jobs.SKIPPED_COLUMN``; not imported: jobs loads torch)
SKIPPED_COLUMN = "skipped_metrics"
#: summary columns a leaderboard cell shows (value, interval, counts, leader flags)
CELL_COLUMNS = ("value", "ci_low", "ci_high", "best", "n_items", "n_excluded", "n_nonfinite", "n_classes")
RANK_COLUMNS = ("rank", "rank_low", "rank_high", "rank_mean", "p_best", "n_ranked")


def aggregate(ctx: SectionContext) -> dict[str, Any]:
    from ..section_inputs import bootstrap_settings
    from ..tables import summarise

    study = study_scores(ctx)
    n_boot, seed = bootstrap_settings(ctx.config)
    summary = summarise(study.scores, study.metric_info, study.controls, n_boot=n_boot, seed=seed)
    csv = ctx.write_table(summary)
    ranks = ctx.read_needed("ranks")
    skipped = skipped_metrics(ctx.files("scores"))
    pairs = sorted(set(zip(summary["dataset"], summary["model"])))
    return {
        "metrics": [{"name": m, "family": study.families[m], "aggregate": study.metric_info[m]["aggregate"],
                     "higher": bool(study.metric_info[m]["higher_is_better"]),
                     "description": study.metric_info[m].get("description", "")} for m in study.metrics],
        "controls": sorted(study.controls),
        "pairs": [_pair(summary, ranks, study, dataset, model,
                        [{"metric": s[2], "reason": s[3]} for s in skipped if s[:2] == (dataset, model)])
                  for dataset, model in pairs],
        "figures": _figures(ctx, summary, study),
        "csv": csv,
        "by_method": _by_method(summary, ranks),
    }


def _pair(summary: "pd.DataFrame", ranks: "pd.DataFrame", study: StudyScores, dataset: str, model: str,
          skipped: list[dict[str, str]]) -> dict[str, Any]:
    """One (data set, model): a table per metric family, methods sorted by mean rank over the family."""
    rows = summary[(summary["dataset"] == dataset) & (summary["model"] == model)]
    rank_rows = ranks[(ranks["dataset"] == dataset) & (ranks["model"] == model)]
    cells = {(r["method"], r["metric"]): r for r in rows.to_dict("records")}
    rank_of = {(r["method"], r["metric"]): r for r in rank_rows.to_dict("records")}
    anchor = pair_anchor(NAME, dataset, model)
    families = []
    for family, metrics in study.by_family(set(rows["metric"])):
        board = rank_rows[rank_rows["metric"].isin(metrics)].groupby("method")["rank"].mean()
        present = [m for m in study.methods if any((m, metric) in cells for metric in metrics)]
        present.sort(key=lambda m: (math.isnan(board.get(m, math.nan)), board.get(m, math.nan), m))
        families.append({
            "family": family, "id": f"{anchor}--{family}",
            "metrics": [{"name": m, "higher": bool(study.metric_info[m]["higher_is_better"])} for m in metrics],
            "rows": [{"method": method, "control": method in study.controls,
                      "mean_rank": float(board.get(method, math.nan)),
                      "cells": [_cell(cells.get((method, m)), rank_of.get((method, m))) for m in metrics]}
                     for method in present],
        })
    return {"dataset": dataset, "model": model, "id": anchor, "families": families, "skipped": skipped}


def _cell(row: dict[str, Any] | None, rank: dict[str, Any] | None) -> dict[str, Any] | None:
    """What a leaderboard cell shows; None for a metric the method has no value on."""
    if row is None:
        return None
    import pandas as pd

    weak = row["beats_controls"]
    cell = {k: row[k] for k in CELL_COLUMNS} | {"weak": (not pd.isna(weak)) and not bool(weak)}
    cell["n_nonfinite"] = int(cell["n_nonfinite"] or 0)
    ranked = rank is not None and not pd.isna(rank["rank"])
    return cell | {k: (rank[k] if ranked else None) for k in RANK_COLUMNS}


def _figures(ctx: SectionContext, summary: "pd.DataFrame", study: StudyScores) -> list[dict[str, str]]:
    """Draw the metrics figure as small multiples: per data set, each family's metrics in figures of at most
    :data:`FIGURE_METRICS` panels (value and interval per method, colour = model)."""
    from ..figures import metrics_figure

    out = []
    for dataset, rows in summary.groupby("dataset", sort=True):
        for family, metrics in study.by_family(set(rows["metric"])):
            methods = [m for m in study.methods if m in set(rows.loc[rows["metric"].isin(metrics), "method"])]
            for start in range(0, len(metrics), FIGURE_METRICS):
                shown = metrics[start:start + FIGURE_METRICS]
                name = f"metrics_{dataset}_{family}_{start // FIGURE_METRICS}.png"
                metrics_figure(rows[rows["metric"].isin(shown)], methods, study.controls, ctx.figure(name), shown)
                out.append({"dataset": dataset, "family": family, "metrics": ", ".join(shown),
                            "png": f"figures/{name}", "svg": f"figures/{Path(name).with_suffix('.svg')}"})
    return out


def _by_method(summary: "pd.DataFrame", ranks: "pd.DataFrame") -> dict[str, dict[str, Any]]:
    """Per method: its value, interval and rank on every (data set, model, metric), for its page."""
    from ..section_inputs import records

    merged = summary.merge(ranks, on=["dataset", "model", "method", "metric"], how="left")
    columns = ["dataset", "model", "metric", "value", "ci_low", "ci_high", "best", "rank", "rank_low", "rank_high"]
    return {str(method): {"rows": records(part, columns)} for method, part in merged.groupby("method", sort=True)}


def skipped_metrics(score_files: list[Path]) -> list[tuple[str, str, str, str]]:
    """Sorted unique ``(dataset, model, metric, reason)`` of the metrics score jobs skipped (their tables'
    ``skipped_metrics`` column, JSON ``{metric: reason}``; tables without it skipped nothing)."""
    from ...store import read_table

    found = set()
    for path in score_files:
        frame = read_table(path)
        if SKIPPED_COLUMN not in frame.columns:
            continue
        for dataset, model, text in frame[["dataset", "model", SKIPPED_COLUMN]].drop_duplicates().itertuples(
                index=False):
            found.update((str(dataset), str(model), metric, reason) for metric, reason in json.loads(text).items())
    return sorted(found)


SECTION = register_section(Section(
    name=NAME, title="Leaderboard", order=10, aggregate=aggregate,
    description="Each method's value on each metric with its 95% bootstrap interval and paired-bootstrap rank, per "
                "data set, model and metric family; the metrics figure as small multiples; skipped metrics noted",
    inputs=("scores", "grids"), needs=("ranks",), config_keys=CONFIG_KEYS,
))
