"""Ranks: every method's rank on every metric, per data set and model, with a paired bootstrap.

Per (data set, model, metric) the methods are ranked by the metric's aggregate (1 = best whatever its direction;
ties share the average rank); the paired bootstrap draws the items once per resample for every method
(:func:`salbench.report.ranks.method_ranks`). The page shows one heatmap per data set and model (methods x
metrics, grouped by family) and a table of each method's mean rank per metric family. Saliency metrics disagree
about which method is best (Tomsett et al., AAAI 2020): a method ranked well by one family and badly by another is
what the family columns show. The main table is the rank table (rank, bootstrap mean rank, 95% interval, share of
resamples ranked best).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._scores import CONFIG_KEYS, StudyScores, pair_anchor, study_scores
from .base import Section, SectionContext, register_section

if TYPE_CHECKING:
    import pandas as pd

NAME = "ranks"


def aggregate(ctx: SectionContext) -> dict[str, Any]:
    from ..figures import ranks_figure
    from ..ranks import method_ranks
    from ..section_inputs import bootstrap_settings

    study = study_scores(ctx)
    n_boot, seed = bootstrap_settings(ctx.config)
    table = method_ranks(study.scores, study.metric_info, n_boot=n_boot, seed=seed)
    csv = ctx.write_table(table)
    families = [family for family, _ in study.by_family()]
    pairs = []
    for (dataset, model), rows in table.groupby(["dataset", "model"], sort=True):
        name = f"ranks_{dataset}_{model}.png"
        ranks_figure(rows, study.metrics, study.families, study.controls, ctx.figure(name))
        pairs.append({"dataset": dataset, "model": model, "id": pair_anchor(NAME, dataset, model),
                      "png": f"figures/{name}", "svg": f"figures/{name[:-4]}.svg",
                      "rows": family_ranks(rows, study)})
    return {"families": families, "pairs": pairs, "csv": csv,
            "by_method": {m: {"pairs": [{"dataset": p["dataset"], "model": p["model"], **row} for p in pairs
                                        for row in p["rows"] if row["method"] == m]}
                          for m in sorted(set(table["method"]))}}


def family_ranks(rows: "pd.DataFrame", study: StudyScores) -> list[dict[str, Any]]:
    """Each method's mean rank over all metrics and over each family's, best overall first (unranked last)."""
    from ..section_inputs import jsonable

    by_family = rows.assign(family=rows["metric"].map(study.families))
    overall = rows.groupby("method")["rank"].mean()
    per_family = by_family.pivot_table(index="method", columns="family", values="rank", aggfunc="mean")
    order = sorted(overall.index, key=lambda m: (overall.isna()[m], overall[m], m))
    return [jsonable({"method": m, "control": m in study.controls, "all": overall[m],
                      "families": {f: per_family[f].get(m) if f in per_family else None
                                   for f, _ in study.by_family()}}) for m in order]


SECTION = register_section(Section(
    name=NAME, title="Ranks", order=20, aggregate=aggregate,
    description="Each method's rank on each metric (1 = best) with its paired-bootstrap interval: a heatmap per "
                "data set and model and each method's mean rank per metric family",
    inputs=("scores", "grids"), config_keys=CONFIG_KEYS,
))
