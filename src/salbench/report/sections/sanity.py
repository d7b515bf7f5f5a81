"""Sanity checks: the verdict matrix per (data set, model) with each check's trust and the controls self-test,
the cascading-randomisation curves and the maps across cascade stages (Adebayo et al., NeurIPS 2018; Binder et
al., CVPR 2023). The statistics and figures are :mod:`salbench.report.sanity`'s."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .base import Section, SectionContext, register_section


def aggregate(ctx: SectionContext) -> dict[str, Any]:
    from .. import sanity
    from ..section_inputs import bootstrap_settings, study_methods

    table = sanity.load_tables(ctx.files("sanity"))
    n_boot, seed = bootstrap_settings(ctx.config)
    verdicts = sanity.verdict_table(table, ctx.config, n_boot, seed)
    if verdicts.empty:
        return {"empty": "No sanity checks ran in this study (config key 'sanity')."}
    csv = ctx.write_table(verdicts)
    methods, controls = study_methods(ctx.config, verdicts["method"])
    measure = (ctx.config.get("sanity") or {}).get("measure", "spearman_abs")
    curves = sanity.cascade_curves(table, measure, methods, controls, ctx.figure("sanity_cascade.png"))
    cascades = ctx.files("cascades")
    by_pair: dict[tuple[str, str], list[Path]] = {}
    for store in cascades:  # results/{dataset}/{model}/sanity/{method}.zarr
        by_pair.setdefault((store.parents[2].name, store.parents[1].name), []).append(store)
    stages = []
    for (dataset, model), stores in sorted(by_pair.items()):
        name = f"sanity_stages_{dataset}_{model}.png"
        if sanity.cascade_grid(stores, methods, controls, ctx.figure(name)):
            stages.append({"dataset": dataset, "model": model, "png": f"figures/{name}"})
    by_method = {method: {"verdicts": rows} for method, rows in sanity.verdicts_by_method(verdicts).items()}
    return {
        "checks": [{"check": c, "meaning": m} for c, m in sanity.check_meanings().items()],
        "pairs": sanity.verdict_matrices(verdicts, methods, controls, sanity.permuted_accuracy(cascades)),
        "curves_png": "figures/sanity_cascade.png" if curves else None,
        "curves_svg": "figures/sanity_cascade.svg" if curves else None,
        "stages": stages, "csv": csv, "by_method": by_method,
    }


SECTION = register_section(Section(
    name="sanity", title="Sanity checks", order=35, aggregate=aggregate,
    description="Verdict per method and sanity check with its bootstrap interval, validated by the controls; "
                "cascading-randomisation curves and maps across the cascade stages",
    inputs=("sanity", "cascades"), config_keys=("seed", "report.bootstrap", "sanity", "methods"),
))
