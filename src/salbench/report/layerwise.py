"""The report's layer-wise section (INV, Bianchi et al., IJCAI 2024): cluster maps layer by layer with their
top-3 labels and weights, and the global explanations' trends across layers.

Reads the cluster stores (``results/{dataset}/{model}/layerwise/clusters.zarr``) and, when labels were
ingested, the ``salbench labels`` folder (merged.parquet, global.parquet, trends.csv). Without labels the maps
are shown unlabelled, one per kept cluster.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from scipy import ndimage

from ..layerwise.explain import merged_map, store_key
from ..store import open_store, read_table
from .figures import RC, _save

#: merged cluster maps shown per (item, layer), heaviest first, and labels per map
MAPS_PER_LAYER = 4
TOP_LABELS = 3
#: characteristics plotted per class: the largest and the smallest slopes
TREND_LINES = 3

def _merged_rows(labels_dir: Path | None, dataset: str, model: str) -> pd.DataFrame:
    if labels_dir is None or not (Path(labels_dir) / "merged.parquet").exists():
        return pd.DataFrame(columns=["image", "layer", "group", "clusters", "weight", "synonym", "score", "rank"])
    merged = read_table(Path(labels_dir) / "merged.parquet")
    return merged[(merged["dataset"] == dataset) & (merged["model"] == model)]


def _panels(store, item: str, layer: str, merged: pd.DataFrame) -> list[tuple[np.ndarray, float, list[str]]]:
    """(map, weight %, top labels) of an item's layer: its merged labelled groups, then its unlabelled clusters."""
    maps = store["cluster_map"].sel(item=item, layer=layer).values
    weights = store["cluster_weight"].sel(item=item, layer=layer).values
    rows = merged[(merged["image"] == item) & (merged["layer"] == layer)]
    panels = []
    labelled = set()
    for _, group in rows.groupby("group"):
        members = [int(c) for c in group["clusters"].iloc[0].split("+")]
        labelled.update(members)
        top = group.sort_values("rank").head(TOP_LABELS)
        panels.append((merged_map(maps[members], weights[members]), float(group["weight"].iloc[0]),
                       [f"{s} ({v:.2f})" for s, v in zip(top["synonym"], top["score"])]))
    for c in np.flatnonzero(~np.isnan(weights)):
        if int(c) not in labelled:
            panels.append((maps[c], float(weights[c]), []))
    return sorted(panels, key=lambda p: (not p[2], -p[1]))[:MAPS_PER_LAYER]  # labelled first, heaviest first


def maps_figure(store, images: dict[str, np.ndarray], classes: list[str], merged: pd.DataFrame, n_items: int,
                path: Path) -> bool:
    """Rows: (item, layer); columns: the image, then the merged cluster maps with w and their top labels."""
    items = [str(i) for i in store["item"].values]
    labelled = [i for i in items if i in set(merged["image"])]
    shown = (labelled or items)[:n_items]
    layers = [str(layer) for layer in store["layer"].values]
    if not shown or not layers:
        return False
    targets = dict(zip(items, map(int, store["target"].values)))
    rows = [(item, layer) for item in shown for layer in layers]
    with _rc():
        fig = Figure(figsize=(1.7 * (1 + MAPS_PER_LAYER), 2.25 * len(rows)))
        axes = fig.subplots(len(rows), 1 + MAPS_PER_LAYER, squeeze=False)
        for r, (item, layer) in enumerate(rows):
            image = images[item]
            grey = image.mean(axis=2) / 255.0
            axes[r, 0].imshow(image)
            axes[r, 0].set_title(f"{item} ({classes[targets[item]]})" if layer == layers[0] else "", fontsize=7)
            axes[r, 0].set_ylabel(layer, fontsize=7)
            for k, (cmap, weight, labels) in enumerate(_panels(store, item, layer, merged), start=1):
                ax = axes[r, k]
                if cmap.shape != grey.shape:
                    cmap = ndimage.zoom(np.nan_to_num(cmap), (grey.shape[0] / cmap.shape[0],
                                                              grey.shape[1] / cmap.shape[1]), order=1)
                ax.imshow(grey, cmap="gray", vmin=0, vmax=1)
                ax.imshow(ndimage.gaussian_filter(np.nan_to_num(cmap), 1.0), cmap="jet", alpha=0.5, vmin=0, vmax=1)
                ax.set_title(f"w = {weight:.1f}%", fontsize=7)
                ax.set_xlabel("\n".join(labels) if labels else "(no labels)", fontsize=6)
            for ax in axes[r]:
                ax.set_xticks([])
                ax.set_yticks([])
                if not ax.images:
                    ax.set_axis_off()
        fig.tight_layout()
        _save(fig, path, ("png",))
    return True


def trends_figure(per_layer: pd.DataFrame, trends: pd.DataFrame, layers: list[str], classes: list[str],
                  path: Path) -> bool:
    """Per class, the mean score per layer of the characteristics with the largest and smallest trend slopes."""
    present = sorted(set(per_layer["target"]))
    if not present:
        return False
    with _rc():
        fig = Figure(figsize=(3.4 * min(3, len(present)), 2.6 * -(-len(present) // 3)))
        axes = fig.subplots(-(-len(present) // 3), min(3, len(present)), squeeze=False).ravel()
        for ax, target in zip(axes, present):
            slopes = trends[trends["target"] == target].dropna(subset=["slope"]).sort_values("slope")
            rising, falling = slopes["synonym"].tail(TREND_LINES)[::-1], slopes["synonym"].head(TREND_LINES)
            picked = list(dict.fromkeys([*rising, *falling]))
            rows = per_layer[per_layer["target"] == target]
            if not picked:  # a single labelled layer: no slope, show its characteristics as points
                picked = list(rows.sort_values("score")["synonym"].tail(TREND_LINES))
            for synonym in picked:
                line = rows[rows["synonym"] == synonym].sort_values("layer_index")
                ax.plot(line["layer_index"], line["score"], marker="o", label=synonym)
            ax.set_xticks(range(len(layers)), layers, rotation=30, ha="right", fontsize=7)
            ax.set_title(classes[target] if target < len(classes) else str(target))
            ax.set_ylabel("mean score")
            ax.legend(fontsize=6)
        for ax in axes[len(present):]:
            ax.set_axis_off()
        fig.tight_layout()
        _save(fig, path, ("png",))
    return True


def _rc():
    from matplotlib import rc_context

    return rc_context(RC)


def top_characteristics(per_layer: pd.DataFrame, trends: pd.DataFrame, classes: list[str]) -> list[dict[str, Any]]:
    """Per class: the :data:`TOP_LABELS` characteristics with the highest mean score over layers, with their trend
    slopes (None where a single layer gives none)."""
    if per_layer.empty:
        return []
    means = per_layer.groupby(["target", "synonym"])["score"].mean().reset_index()
    means = means.merge(trends[["target", "synonym", "slope"]], on=["target", "synonym"], how="left")
    out = []
    for target, part in means.groupby("target"):
        top = part.sort_values(["score", "synonym"], ascending=[False, True]).head(TOP_LABELS)
        out.append({"class": classes[target] if target < len(classes) else str(target),
                    "characteristics": [{"synonym": str(s), "score": float(v), "slope": None if pd.isna(d) else float(d)}
                                        for s, v, d in zip(top["synonym"], top["score"], top["slope"])]})
    return out


def pair_parts(cluster_stores: list[Path], labels_dir: Path | None, data_stores: dict[str, Path], folder: Path,
               n_items: int = 2) -> list[dict[str, Any]]:
    """Per cluster store (one data set and model): draw its cluster-maps figure and, with labels, its trends figure
    into ``folder``/figures; their paths relative to ``folder`` (None when not drawn), whether the maps are
    labelled, and each class's top characteristics."""
    labels_dir = Path(labels_dir) if labels_dir else None
    per_layer_all = trends_all = None
    if labels_dir is not None and (labels_dir / "global.parquet").exists():
        per_layer_all = read_table(labels_dir / "global.parquet")
        trends_all = pd.read_csv(labels_dir / "trends.csv")
    out = []
    for path in cluster_stores:
        store = open_store(path)
        dataset, model = store_key(Path(path), store)
        if dataset not in data_stores:
            continue
        data = open_store(data_stores[dataset])
        classes = [str(c) for c in data.attrs.get("classes", [])]
        ids = set(map(str, store["item"].values))
        images = {str(i): data["image"].sel(item=i).values.transpose(1, 2, 0) for i in data["item"].values
                  if str(i) in ids}
        merged = _merged_rows(labels_dir, dataset, model)
        part: dict[str, Any] = {"dataset": dataset, "model": model, "labelled": not merged.empty,
                                "maps_png": None, "trends_png": None, "top": []}
        name = f"figures/layerwise_maps_{dataset}_{model}.png"
        if maps_figure(store, images, classes, merged, n_items, folder / name):
            part["maps_png"] = name
        if per_layer_all is not None:
            per_layer = per_layer_all[(per_layer_all["dataset"] == dataset) & (per_layer_all["model"] == model)]
            trends = trends_all[(trends_all["dataset"] == dataset) & (trends_all["model"] == model)]
            layers = [str(layer) for layer in store["layer"].values]
            name = f"figures/layerwise_trends_{dataset}_{model}.png"
            if trends_figure(per_layer, trends, layers, classes, folder / name):
                part["trends_png"] = name
            part["top"] = top_characteristics(per_layer, trends, classes)
        out.append(part)
    return out
