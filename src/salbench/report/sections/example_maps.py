"""Example maps: the first items of each data set (the same items for every method) with every method's map, one
figure per method family and (data set, model), at most :data:`MAX_METHODS` methods a figure so each map is large
enough to read. Families come from the method catalog (:func:`salbench.report.section_inputs.method_family`)."""

from __future__ import annotations

import math
from typing import Any

from .base import Section, SectionContext, register_section

#: report.examples when the config does not say
DEFAULT_EXAMPLES = 6
#: methods (columns) per figure at most; a larger family is split into balanced parts
MAX_METHODS = 6


def parts(methods: list[str], limit: int = MAX_METHODS) -> list[list[str]]:
    """``methods`` in consecutive parts of at most ``limit``, as equal in size as possible."""
    count = max(1, math.ceil(len(methods) / limit))
    size, extra = divmod(len(methods), count)
    out, start = [], 0
    for k in range(count):
        end = start + size + (k < extra)
        out.append(methods[start:end])
        start = end
    return out


def aggregate(ctx: SectionContext) -> dict[str, Any]:
    import pandas as pd

    from ...snapshot import load_catalog
    from ..examples import read_items, read_maps, store_key
    from ..figures import MapColumn, example_grid
    from ..section_inputs import families_of, study_methods

    stores = ctx.files("maps")
    if not stores:
        return {"empty": "No saliency maps were computed in this study."}
    k = int((ctx.config.get("report") or {}).get("examples", DEFAULT_EXAMPLES))
    items = {dataset: read_items(path, k) for dataset, path in ctx.data_stores().items()}
    by_pair: dict[tuple[str, str], dict[str, Any]] = {}
    for path in stores:
        dataset, model, method = store_key(path)
        if dataset not in items:
            raise ValueError(f"maps store {path} is for data set {dataset!r}, which has no data store")
        by_pair.setdefault((dataset, model), {})[method] = path
    methods, controls = study_methods(ctx.config, {m for paths in by_pair.values() for m in paths})
    catalog = load_catalog()
    pairs, rows = [], []
    for (dataset, model), paths in sorted(by_pair.items()):
        shown = items[dataset]
        figures = []
        for family, members in families_of([m for m in methods if m in paths], ctx.config, catalog):
            split = parts(members)
            for number, chunk in enumerate(split, start=1):
                name = (f"examples_{dataset}_{model}_{family.replace(' ', '_')}"
                        + (f"_{number}" if len(split) > 1 else "") + ".png")
                maps = [read_maps(paths[m], shown.ids) for m in chunk]
                example_grid(shown.images, shown.masks, shown.labels,
                             [MapColumn(m.method, m.maps, m.signed, m.method in controls) for m in maps],
                             ctx.figure(name))
                figures.append({"family": family, "part": number, "parts": len(split), "methods": chunk,
                                "png": f"figures/{name}"})
                rows += [{"dataset": dataset, "model": model, "family": family, "method": m,
                          "figure": f"figures/{name}"} for m in chunk]
        pairs.append({"dataset": dataset, "model": model, "figures": figures})
    csv = ctx.write_table(pd.DataFrame(rows))
    by_method: dict[str, dict[str, list[dict[str, str]]]] = {}
    for row in rows:
        by_method.setdefault(row["method"], {"figures": []})["figures"].append(
            {"dataset": row["dataset"], "model": row["model"], "family": row["family"], "png": row["figure"]})
    return {"pairs": pairs, "n_examples": k, "csv": csv, "by_method": by_method}


SECTION = register_section(Section(
    name="example_maps", title="Example maps", order=50, aggregate=aggregate,
    description="The first items of each data set with every method's map, one figure per method family and "
                "(data set, model)",
    inputs=("maps", "data"), config_keys=("report.examples", "methods"),
))
