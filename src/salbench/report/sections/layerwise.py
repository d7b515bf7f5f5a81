"""Layer-wise explanations (INV, Bianchi et al., IJCAI 2024): cluster maps layer by layer with their top-3 labels
and weights, and the global explanations' trends across layers, from the cluster stores and the ``salbench labels``
folder (:mod:`salbench.report.layerwise`)."""

from __future__ import annotations

from typing import Any

from .base import Section, SectionContext, register_section

#: items whose cluster maps are drawn per (data set, model)
ITEMS = 2


def aggregate(ctx: SectionContext) -> dict[str, Any]:
    import pandas as pd

    from ..layerwise import pair_parts

    stores = ctx.files("layerwise")
    if not stores:
        return {"empty": "Not computed in this study: add a layerwise section to the config for cluster maps and "
                         "their labels."}
    parts = pair_parts(stores, ctx.file("layerwise_labels"), ctx.data_stores(), ctx.out, ITEMS)
    csv = ctx.write_table(pd.DataFrame(
        [{"dataset": p["dataset"], "model": p["model"], "class": t["class"], **c}
         for p in parts for t in p["top"] for c in t["characteristics"]],
        columns=["dataset", "model", "class", "synonym", "score", "slope"]))
    return {"pairs": parts, "csv": csv}


SECTION = register_section(Section(
    name="layerwise", title="Layer-wise explanations (INV)", order=65, aggregate=aggregate,
    description="Cluster maps layer by layer with their labels and weights, and each class's characteristics "
                "across layers",
    inputs=("layerwise", "layerwise_labels", "data"), config_keys=(),
))
