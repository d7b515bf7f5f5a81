"""Deletion and insertion curves (Petsiuk et al., BMVC 2018; ROAD, Rong et al., ICML 2022): the mean curve per
method with its 95% bootstrap band, one interactive figure per (data set, model) with a panel per curve metric
(toggle methods in the legend, hover for values) and a static small-multiples PNG as its fallback; each method's
page gets its own curves beside the controls'. The statistics and figures are :mod:`salbench.report.curves`'s."""

from __future__ import annotations

from typing import Any

from .base import Section, SectionContext, register_section


def aggregate(ctx: SectionContext) -> dict[str, Any]:
    from ...snapshot import load_catalog
    from .. import curves
    from ..section_inputs import bootstrap_settings, families_of, study_methods
    from ..tables import metric_families, metric_order

    n_boot, seed = bootstrap_settings(ctx.config)
    summary = curves.curve_summary(curves.load_curves(ctx.files("curves")), n_boot, seed)
    if summary.empty:
        return {"empty": "This study scores no curve metric (deletion, insertion or ROAD)."}
    csv = ctx.write_table(summary)
    metric_info = ctx.metric_info()
    present = set(summary["metric"])
    ordered = metric_order(metric_families(ctx.config, metric_info))
    metrics = [m for m in ordered if m in present] + sorted(present - set(ordered))
    methods, controls = study_methods(ctx.config, summary["method"])
    families = {m: family for family, members in families_of(methods, ctx.config, load_catalog()) for m in members}
    pairs, by_method = [], {}
    for (dataset, model), part in summary.groupby(["dataset", "model"], sort=True):
        shown = [m for m in metrics if m in set(part["metric"])]
        title = f"{dataset} / {model}"
        name = f"curves_{dataset}_{model}.png"
        curves.curves_figure(part, shown, methods, controls, metric_info, title, ctx.figure(name), families)
        anchor = f"curves-{dataset}--{model}"
        pairs.append({"dataset": dataset, "model": model, "id": anchor, "png": f"figures/{name}",
                      "svg": f"figures/{name[:-4]}.svg",
                      "spec": curves.interactive_figure(part, shown, methods, controls, metric_info)})
        present_controls = [c for c in methods if c in controls and c in set(part["method"])]
        for method in sorted(set(part["method"]) - controls):
            mine = [method, *present_controls]
            by_method.setdefault(method, {"pairs": []})["pairs"].append({
                "dataset": dataset, "model": model, "id": f"{anchor}--{method}",
                "spec": curves.interactive_figure(part[part["method"].isin(mine)], shown, mine, controls,
                                                  metric_info)})
    return {"interactive": True, "metrics": metrics, "pairs": pairs, "csv": csv, "by_method": by_method,
            "n_methods": len(set(summary["method"]))}


SECTION = register_section(Section(
    name="curves", title="Deletion and insertion curves", order=45, aggregate=aggregate,
    description="Mean deletion/insertion/ROAD curve per method with its 95% bootstrap band: an interactive figure "
                "per data set and model (toggle methods, hover for values) and a static fallback",
    inputs=("curves",), config_keys=("seed", "report", "methods", "metrics", "grid"),
))
