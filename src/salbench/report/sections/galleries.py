"""Best and worst items per method: each method's best and worst items on one metric (``report.gallery_metric``,
by default the first localisation metric), its map over the input and the target's mask outlined; one figure per
method family and (data set, model). Selection and drawing are :mod:`salbench.report.galleries`'."""

from __future__ import annotations

from typing import Any

from .base import Section, SectionContext, register_section
from ._scores import study_scores


def aggregate(ctx: SectionContext) -> dict[str, Any]:
    import pandas as pd

    from ...snapshot import load_catalog
    from ..examples import read_items, read_maps, store_key
    from ..galleries import DEFAULT_PER_SIDE, GalleryRow, gallery_figure, gallery_metric, select
    from ..section_inputs import families_of

    study = study_scores(ctx)
    options = ctx.config.get("report") or {}
    metric = gallery_metric(options, study.metrics, study.families)
    if metric is None:
        return {"empty": "No per-item scores to sort by."}
    picks = select(study.scores, metric, bool(study.metric_info[metric]["higher_is_better"]),
                   int(options.get("gallery_items", DEFAULT_PER_SIDE)))
    stores = {store_key(path): path for path in ctx.files("maps")}
    picks = {key: pick for key, pick in picks.items() if key in stores}
    if not picks:
        return {"empty": f"No method has maps and scores on {metric} to pick its best and worst items by."}
    wanted: dict[str, set[str]] = {}
    for (dataset, _, _), pick in picks.items():
        wanted.setdefault(dataset, set()).update(pick.best + pick.worst)
    data = ctx.data_stores()
    items = {dataset: read_items(data[dataset], 0, ids) for dataset, ids in wanted.items()}
    catalog = load_catalog()
    pairs, rows = [], []
    by_method: dict[str, dict[str, list[dict[str, Any]]]] = {}
    for dataset, model in sorted({(d, m) for d, m, _ in picks}):
        held = items[dataset]
        images = dict(zip(held.ids, held.images))
        masks = dict(zip(held.ids, held.masks if held.masks is not None else [None] * len(held.ids)))
        present = [m for m in study.methods if (dataset, model, m) in picks]
        figures = []
        for family, members in families_of(present, ctx.config, catalog):
            gallery = []
            for method in members:
                pick = picks[(dataset, model, method)]
                shown = pick.best + pick.worst
                maps = read_maps(stores[(dataset, model, method)], shown)
                gallery.append(GalleryRow(method, shown, [pick.values[i] for i in shown], maps.maps, maps.signed,
                                          method in study.controls))
                rows += [{"dataset": dataset, "model": model, "method": method, "family": family,
                          "side": "best" if k < len(pick.best) else "worst", "item": item, "value": pick.values[item]}
                         for k, item in enumerate(shown)]
            name = f"gallery_{dataset}_{model}_{family.replace(' ', '_')}.png"
            gallery_figure(gallery, images, masks, metric, ctx.figure(name))
            figures.append({"family": family, "methods": members, "png": f"figures/{name}"})
            for method in members:
                by_method.setdefault(method, {"figures": [], "items": []})["figures"].append(
                    {"dataset": dataset, "model": model, "family": family, "png": f"figures/{name}"})
        pairs.append({"dataset": dataset, "model": model, "figures": figures})
    for row in rows:
        by_method[row["method"]]["items"].append({k: row[k] for k in ("dataset", "model", "side", "item", "value")})
    csv = ctx.write_table(pd.DataFrame(rows))
    return {"metric": metric, "pairs": pairs, "csv": csv, "by_method": by_method}


SECTION = register_section(Section(
    name="galleries", title="Best and worst items per method", order=55, aggregate=aggregate,
    description="Each method's best and worst items on the gallery metric with its maps, one figure per method "
                "family and (data set, model)",
    inputs=("scores", "maps", "data"), config_keys=("report.gallery_metric", "report.gallery_items", "methods", "metrics", "grid"),
))
