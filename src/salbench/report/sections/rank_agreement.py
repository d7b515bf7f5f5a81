"""Rank agreement between metrics: Kendall's tau-b between the metrics' orderings of the methods.

Per data set and model, every pair of metrics is compared on the leaderboard's values, each metric oriented so
that larger is better (:func:`salbench.report.ranks.rank_agreement`). Saliency metrics are known to disagree about
which method is best (Tomsett, Harborne, Chakraborty, Gurram & Preece, "Sanity Checks for Saliency Metrics", AAAI
2020); high agreement inside a metric family and low agreement across families means the families measure
different properties. The main table is the long table of tau, its p-value and the methods compared per ordered
pair of metrics.
"""

from __future__ import annotations

from typing import Any

from ._scores import pair_anchor
from .base import Section, SectionContext, register_section

NAME = "rank_agreement"


def aggregate(ctx: SectionContext) -> dict[str, Any]:
    from ..figures import rank_agreement_figure
    from ..ranks import rank_agreement
    from ..section_inputs import jsonable
    from ..tables import metric_families, metric_order

    summary = ctx.read_needed("leaderboard")
    families = metric_families(ctx.config, ctx.metric_info())
    metrics = metric_order({m: families[m] for m in set(summary["metric"])})
    table = rank_agreement(summary, metrics)
    if table.empty:
        return {"empty": "No metric has values to compare."}
    csv = ctx.write_table(table)
    pairs = []
    for (dataset, model), rows in table.groupby(["dataset", "model"], sort=True):
        name = f"rank_agreement_{dataset}_{model}.png"
        rank_agreement_figure(rows, metrics, families, ctx.figure(name))
        shown = [m for m in metrics if m in set(rows["metric_a"])]
        tau = rows.pivot(index="metric_a", columns="metric_b", values="tau").reindex(index=shown, columns=shown)
        pairs.append({"dataset": dataset, "model": model, "id": pair_anchor(NAME, dataset, model),
                      "png": f"figures/{name}", "svg": f"figures/{name[:-4]}.svg",
                      "columns": [{"key": "metric", "format": "code"}, {"key": "family"},
                                  *({"key": m, "num": True, "format": "fmt"} for m in shown)],
                      "rows": [jsonable({"metric": a, "family": families[a], **tau.loc[a].to_dict()}) for a in shown],
                      "n_methods": int(rows["n_methods"].max())})
    return {"pairs": pairs, "csv": csv}


SECTION = register_section(Section(
    name=NAME, title="Rank agreement between metrics", order=30, aggregate=aggregate,
    description="Kendall's tau-b between every pair of metrics' orderings of the methods, per data set and model "
                "(do the metrics agree on which method is better?)",
    needs=("leaderboard",), config_keys=("metrics", "grid"),
))
