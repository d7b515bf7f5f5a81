"""Grid localisation examples (Böhle et al., CVPR 2021, CoDA-Nets, Sec. 5.2 and Fig. 6): per (data set, model) the
first grids and each method's map for every cell's class, from the maps the grid localisation jobs scored
(:mod:`salbench.report.grid_examples`)."""

from __future__ import annotations

from typing import Any

from .base import Section, SectionContext, register_section


def aggregate(ctx: SectionContext) -> dict[str, Any]:
    import pandas as pd

    from ..grid_examples import pair_figures
    from ..section_inputs import study_methods

    stores = ctx.files("grid_maps")
    if not stores:
        return {"empty": "Not run: the study config has no grid section (or grid.enabled: false)."}
    methods, controls = study_methods(ctx.config)
    figures = pair_figures(stores, methods, controls, ctx.out)
    csv = ctx.write_table(pd.DataFrame([{k: f[k] for k in ("dataset", "model", "png", "note")} for f in figures]))
    by_method: dict[str, dict[str, list[dict[str, str]]]] = {}
    for f in figures:
        for method in f["methods"]:
            by_method.setdefault(method, {"figures": []})["figures"].append(
                {"dataset": f["dataset"], "model": f["model"], "png": f["png"]})
    return {"figures": figures, "csv": csv, "by_method": by_method}


SECTION = register_section(Section(
    name="grid_examples", title="Grid localisation examples", order=60, aggregate=aggregate,
    description="The first grids of each (data set, model) and every method's map for each cell's class, with "
                "the cell's grid localisation score",
    inputs=("grid_maps",), config_keys=("methods",),
))
