"""Labelled cluster maps: merging by best characteristic, global explanations, and the ``salbench labels`` job.

Bianchi et al., IJCAI 2024 (arXiv:2405.03301). Merging follows ``Antonio-Dee/interpretable-network-
visualizations``, ``Code/Label Analysis/explainations_utils.py`` (``merge_clusters_on_best_characteristics``,
``create_and_save_plot``): within an image and layer, cluster maps whose best characteristic (highest game
score) coincides are merged, transitively: the merged weight is the sum of the members' weights W_C, the merged
map their W-weighted average, and each characteristic's merged score ``sum_C W_C score_C / sum_C W_C`` (a
characteristic a member lacks scores 0 there). Global explanations follow ``Code/Label Analysis/
testing&global.ipynb`` (``make_label_plot``): per class, layer and characteristic, the mean score over the
class's (unmerged) cluster maps at that layer that were given the characteristic (0 where none was), and its
trend: the least-squares slope of that mean over all the model's explained layers against the layer's index.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd
import xarray as xr

from ..store import atomic_path, open_store, write_table
from .labels import (CLASS_KEYS, SENTENCE_MODEL, Embedder, LabelFile, class_synonyms, game_scores, ingest,
                     load_sentence_model, read_label_file, sentence_embedder)

log = logging.getLogger(__name__)

GROUP_KEYS = ["dataset", "model", "image", "target", "layer"]
MERGED_COLUMNS = [*GROUP_KEYS, "group", "clusters", "weight", "synonym", "score", "rank"]


def _best(scores: pd.Series) -> set[str]:
    return set(scores.index[scores == scores.max()])


def merge_groups(scores: dict[int, pd.Series]) -> list[list[int]]:
    """Clusters (of one image and layer) whose best characteristics coincide, merged transitively.

    ``scores`` maps cluster -> score per synonym. Ties for the best count: two clusters merge when their
    sets of best characteristics share one. Groups come back sorted, each as sorted cluster ids.
    """
    parent = {c: c for c in scores}

    def root(c: int) -> int:
        while parent[c] != c:
            c = parent[c]
        return c

    clusters = sorted(scores)
    best = {c: _best(scores[c]) for c in clusters}
    for i, a in enumerate(clusters):
        for b in clusters[i + 1:]:
            if best[a] & best[b]:
                parent[max(root(a), root(b))] = min(root(a), root(b))
    groups: dict[int, list[int]] = {}
    for c in clusters:
        groups.setdefault(root(c), []).append(c)
    return sorted(groups.values())


def merged_scores(scores: dict[int, pd.Series], weights: dict[int, float], members: Sequence[int]) -> pd.Series:
    """Per-characteristic score of a merged group: ``sum_C W_C score_C / sum_C W_C`` (0 where C lacks it)."""
    table = pd.DataFrame({c: scores[c] for c in members}).fillna(0.0)
    w = np.array([weights[c] for c in members], float)
    return (table * w).sum(axis=1) / w.sum()


def merged_map(maps: np.ndarray, weights: Sequence[float]) -> np.ndarray:
    """Weight-averaged cluster map of a merged group from member maps ``[C, y, x]`` and weights ``[C]``."""
    w = np.asarray(weights, float)
    return np.tensordot(w, np.asarray(maps, float), axes=1) / w.sum()


def merge_clusters(cluster_scores: pd.DataFrame, weights: pd.DataFrame) -> pd.DataFrame:
    """Merged groups with their characteristics, per image and layer: one row per (group, synonym).

    ``cluster_scores``: :func:`~salbench.layerwise.labels.game_scores`' table; ``weights``: cluster_weight
    (percent) per (dataset, model, image, layer, cluster). Columns: :data:`MERGED_COLUMNS`, where
    ``clusters`` names the members ("0+3"), ``weight`` is their summed weight and ``rank`` orders a group's
    characteristics by score (1 = best).
    """
    w = weights.set_index(["dataset", "model", "image", "layer", "cluster"])["weight"]
    rows = []
    for key, part in cluster_scores.groupby(GROUP_KEYS, sort=True):
        scores = {int(c): s.set_index("synonym")["score"] for c, s in part.groupby("cluster")}
        cw = {c: float(w[(key[0], key[1], key[2], key[4], c)]) for c in scores}
        for g, members in enumerate(merge_groups(scores)):
            merged = merged_scores(scores, cw, members).sort_values(ascending=False, kind="stable")
            for rank, (synonym, value) in enumerate(merged.items(), start=1):
                rows.append((*key, g, "+".join(map(str, members)), sum(cw[c] for c in members), synonym,
                             float(value), rank))
    return pd.DataFrame(rows, columns=MERGED_COLUMNS)


def global_explanations(cluster_scores: pd.DataFrame, layer_order: dict[tuple[str, str], list[str]]
                        ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per (dataset, model, class, layer, synonym) mean score over the class's cluster maps; per-class trends.

    ``cluster_scores``: :func:`~salbench.layerwise.labels.game_scores`' table. For every characteristic given
    for a class and every layer of ``layer_order[(dataset, model)]``: the mean of its scores over the class's
    cluster maps at that layer that were given it (``n_clusters`` of them; score 0 where there are none).
    Trend: least-squares slope of those means against the layer's index over all the layers (NaN with one).
    """
    keys = ["dataset", "model", "target"]
    per_layer_cols = [*keys, "layer", "layer_index", "synonym", "score", "n_clusters"]
    trend_cols = [*keys, "synonym", "slope", "n_layers"]
    if cluster_scores.empty:
        return pd.DataFrame(columns=per_layer_cols), pd.DataFrame(columns=trend_cols)
    stats = cluster_scores.groupby([*keys, "synonym", "layer"])["score"].agg(["mean", "size"])
    rows, trends = [], []
    for (dataset, model, target, synonym), part in stats.groupby(level=[0, 1, 2, 3], sort=True):
        layers = layer_order[(dataset, model)]
        given = part.droplevel([0, 1, 2, 3])
        score = given["mean"].reindex(layers, fill_value=0.0).to_numpy(float)
        count = given["size"].reindex(layers, fill_value=0).to_numpy(int)
        rows += [(dataset, model, target, layer, j, synonym, score[j], count[j]) for j, layer in enumerate(layers)]
        slope = float(np.polyfit(np.arange(len(layers), dtype=float), score, 1)[0]) if len(layers) >= 2 else np.nan
        trends.append((dataset, model, target, synonym, slope, len(layers)))
    per_layer = pd.DataFrame(rows, columns=per_layer_cols).sort_values([*keys, "layer_index", "synonym"],
                                                                      ignore_index=True)
    return per_layer, pd.DataFrame(trends, columns=trend_cols)


def store_key(path: Path, ds: xr.Dataset) -> tuple[str, str]:
    """(dataset, model) of a cluster store: its attrs, else ``results/{dataset}/{model}/layerwise/clusters.zarr``."""
    parts = Path(path).resolve().parts
    return str(ds.attrs.get("dataset", parts[-4])), str(ds.attrs.get("model", parts[-3]))


def cluster_weights(stores: dict[tuple[str, str], xr.Dataset]) -> pd.DataFrame:
    """cluster_weight of every kept cluster of every store, tidy."""
    frames = []
    for (dataset, model), ds in stores.items():
        table = ds["cluster_weight"].to_dataframe(name="weight").reset_index().dropna(subset=["weight"])
        frames.append(pd.DataFrame({"dataset": dataset, "model": model, "image": table["item"].astype(str),
                                    "layer": table["layer"].astype(str), "cluster": table["cluster"].astype(int),
                                    "weight": table["weight"].astype(float)}))
    return pd.concat(frames, ignore_index=True)


def process_labels(files: Sequence[LabelFile], stores: dict[tuple[str, str], xr.Dataset], embed: Embedder
                   ) -> dict[str, Any]:
    """The whole label chain on in-memory inputs: answers, synonyms, scores, merged groups, global tables."""
    answers, skipped = ingest(files, stores)
    synonyms = class_synonyms(answers, embed)
    answers = answers.merge(synonyms[[*CLASS_KEYS, "text", "synonym"]], on=[*CLASS_KEYS, "text"], how="left")
    scores = game_scores(answers)
    merged = merge_clusters(scores, cluster_weights(stores))
    order = {key: list(map(str, ds["layer"].values)) for key, ds in stores.items()}
    per_layer, trends = global_explanations(scores, order)
    return {"answers": answers, "synonyms": synonyms, "cluster_scores": scores, "merged": merged,
            "global": per_layer, "trends": trends, "skipped": skipped}


def run_labels(cluster_stores: Sequence[Path], label_files: Sequence[Path], out: Path,
               embed: Embedder | None = None) -> dict[str, Any]:
    """``salbench labels``: process ``label_files`` against ``cluster_stores`` and write the tables into ``out``.

    Writes answers.parquet, synonyms.csv, cluster_scores.parquet, merged.parquet (+ .csv), global.parquet
    (+ .csv), trends.csv and summary.json (stores, files, skip counts, the Sentence-BERT model).
    """
    stores = {}
    for path in cluster_stores:
        ds = open_store(path)
        stores[store_key(path, ds)] = ds
    files = [read_label_file(p) for p in label_files]
    embed = embed or sentence_embedder(load_sentence_model())
    result = process_labels(files, stores, embed)
    summary = {
        "stores": {f"{d}/{m}": str(p) for (d, m), p in zip(stores, cluster_stores)},
        "store_sha256": {f"{d}/{m}": ds.attrs.get("content_sha256") for (d, m), ds in stores.items()},
        "label_files": [str(p) for p in label_files],
        "answers": len(result["answers"]), "skipped": result["skipped"],
        "distinct_labels": len(result["synonyms"]), "synonyms": int(result["synonyms"]["synonym"].nunique()),
        "merged_groups": int(result["merged"].groupby([*GROUP_KEYS, "group"]).ngroups),
        "sentence_model": SENTENCE_MODEL, "lemmatiser": "simplemma",
    }
    with atomic_path(out) as folder:  # a killed job leaves no folder that looks complete
        folder.mkdir(parents=True)
        for name in ("answers", "cluster_scores", "merged", "global"):
            write_table(result[name], folder / f"{name}.parquet")
        for name in ("synonyms", "merged", "global", "trends"):
            result[name].to_csv(folder / f"{name}.csv", index=False)
        (folder / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    log.info("labels: %d answers, %d synonyms, %d merged groups", summary["answers"], summary["synonyms"],
             summary["merged_groups"])
    return summary
