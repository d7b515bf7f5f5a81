"""A small synthetic study on disk: score tables, maps stores and a data store, following the report's inputs."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from salbench.store import object_strings, write_store, write_table

SIZE = 32
N_ITEMS = 12
CLASSES = ["circle", "square", "triangle"]
DATASETS = ("shapes",)
MODELS = ("cnn_a", "cnn_b")
METHODS = {"gradient": "gradient", "gradcam": "gradcam", "random": "random", "edges": "sobel"}
METRIC_INFO = {
    "pointing_game": {"aggregate": "class_mean", "higher_is_better": True,
                      "description": "Share of maps whose maximum falls inside the target's mask."},
    "deletion_auc": {"aggregate": "mean", "higher_is_better": False,
                     "description": "Area under the logit curve as the most salient pixels are deleted."},
}
#: gradient's pointing-game hits on cnn_a, by item: class 0 has four items, class 1 three, class 2 five
HAND_TARGETS = np.array([0, 0, 0, 0, 1, 1, 1, 2, 2, 2, 2, 2])
HAND_VALUES = np.array([1, 1, 1, 1, 0, 0, np.nan, 1, 0, np.nan, 0, 1], dtype=float)
#: claims on the synthetic study: a hand-worked value (gradient's class-mean pointing game on cnn_a is 0.5), a
#: comparison, and claims it has no data for (another data source; a method it did not run)
CLAIMS = """
version: 1
claims:
  - {id: gradient-value, kind: value, claim: gradient points half the time, metric: pointing_game,
     method: gradient, value: 0.5, tolerance: 0.01, scope: {models: [cnn_a]}, source: {paper: hand-made, evidence: code}}
  - {id: gradient-value-off, kind: value, claim: gradient points 60 % of the time, metric: pointing_game,
     method: gradient, value: 0.6, tolerance: 0.05, scope: {models: [cnn_a]}, source: {paper: hand-made}}
  - {id: gradcam-vs-gradient, kind: compare, claim: Grad-CAM points better than the gradient, metric: pointing_game,
     better: gradcam, worse: gradient, source: {paper: TorchRay, where: VOC07 VGG16, evidence: code}}
  - {id: voc-only, kind: value, claim: a VOC number, metric: pointing_game, values: {gradcam: 0.866}, tolerance: 0.015,
     scope: {sources: [voc07]}, source: {paper: TorchRay}}
  - {id: rise-verdict, kind: verdict, claim: RISE passes, method: rise, check: model_sensitivity, expect: pass,
     source: {paper: nobody}}
"""


@dataclass(frozen=True)
class Study:
    """Paths of the synthetic study's inputs (``score_files``, ``map_stores``, ...), its ``config`` and ``metric_info``."""

    kwargs: dict[str, Any]


def make_study(root: Path) -> Study:
    """Write the synthetic study's inputs under ``root``."""
    rng = np.random.default_rng(0)
    root.mkdir(parents=True, exist_ok=True)
    claims = root / "claims.yaml"
    claims.write_text(CLAIMS)
    data_path = write_store(_data(rng), root / "shapes" / "data.zarr")
    score_files, map_stores = [], []
    for model in MODELS:
        for method, registered in METHODS.items():
            map_stores.append(write_store(_maps(rng, model, method, registered), root / model / f"{method}.zarr"))
            score_files.append(_scores(rng, root / model / f"{method}.parquet", model, method))
    curve_files = [_curves(root / model / f"{method}.curves.parquet", model, method)
                   for model in MODELS for method in METHODS]
    config = {
        "study": "synthetic", "seed": 0, "device": "cpu",
        "datasets": {"shapes": {"source": "shapes", "params": {}}},
        "models": {m: {"arch": "tiny_cnn", "train": {"epochs": 1}} for m in MODELS},
        "methods": {m: {"method": r, "params": {}} for m, r in METHODS.items()},
        "metrics": {m: {"metric": m, "params": {}} for m in METRIC_INFO},
        "report": {"examples": 4, "bootstrap": 200},
        "references": [{"metric": "deletion_auc", "method": "gradcam", "model": "cnn_b", "value": 0.5,
                        "tolerance": 0.2, "source": "a made-up reference"}],
    }
    return Study(kwargs={
        "study": "synthetic", "config": config, "score_files": score_files, "map_stores": map_stores,
        "data_stores": {"shapes": data_path}, "out_dir": root / "report", "tables_dir": root / "tables",
        "metric_info": METRIC_INFO, "claims_file": claims, "curve_files": curve_files,
        "grid_map_stores": grid_map_stores(root / "grid", data_path), "fidelity_file": _fidelity(root / "fidelity.md"),
    })


#: a fidelity table with a row of a method the study ran (gradcam) and one it did not (rap)
FIDELITY = """# Fidelity

| method | reference | difference | why | effect on the numbers |
|---|---|---|---|---|
| `gradcam` | `jacobgil/pytorch-grad-cam`, `base_cam.py` | none \\| all | a <b>test</b> | none |
| `rap` | `wjNam/Relative_Attributing_Propagation`, `modules/layers.py` | none | - | none |
"""


def _fidelity(path: Path) -> Path:
    path.write_text(FIDELITY)
    return path


def _data(rng: np.random.Generator) -> xr.Dataset:
    yy, xx = np.mgrid[:SIZE, :SIZE]
    masks = np.zeros((N_ITEMS, SIZE, SIZE), dtype=bool)
    for i in range(N_ITEMS):
        cy, cx = rng.integers(8, SIZE - 8, size=2)
        masks[i] = (yy - cy) ** 2 + (xx - cx) ** 2 < 36
    images = rng.integers(0, 80, size=(N_ITEMS, 3, SIZE, SIZE), dtype=np.uint8)
    images[:, 0][masks] = 230
    return xr.Dataset(
        {"image": (("item", "channel", "y", "x"), images), "mask": (("item", "y", "x"), masks),
         "difficult": ("item", np.zeros(N_ITEMS, dtype=bool))},
        coords={"item": object_strings([f"img{i:02d}" for i in range(N_ITEMS)]),
                "image_id": ("item", object_strings([f"img{i:02d}" for i in range(N_ITEMS)])),
                "target": ("item", HAND_TARGETS)},
        attrs={"dataset": "shapes", "classes": CLASSES, "manifest_sha256": "ab" * 32, "params": {}, "has_masks": True},
    )


def _maps(rng: np.random.Generator, model: str, method: str, registered: str) -> xr.Dataset:
    maps = rng.normal(size=(N_ITEMS, SIZE, SIZE)).astype(np.float32)
    if registered != "gradient":
        maps = np.abs(maps)
    return xr.Dataset(
        {"saliency": (("item", "y", "x"), maps)},
        coords={"item": object_strings([f"img{i:02d}" for i in range(N_ITEMS)]), "target": ("item", HAND_TARGETS)},
        attrs={
            "dataset": "shapes", "model": model, "method": method, "method_name": registered,
            "method_params": {"channel_reduction": "max_abs"}, "seed": 0, "checkpoint_sha256": "cd" * 32,
            "data_manifest_sha256": "ab" * 32, "runtime_s": 1.5, "device": "cpu",
            "provenance": {"versions": {"salbench": "0.1.0", "torch": "2.14.1"}, "git_revision": "abc123def456",
                           "python": "3.11.9", "host": "testhost", "platform": "Linux", "device": "cpu (x86_64)"},
        },
    )


#: grid examples: the kept 2x2 grids of cnn_a (cnn_b built none) and each method's maps of them, hand-made so that
#: gradcam's map is the explained cell (score 1), random's is uniform (0.25), gradient's is signed noise
GRID_METHODS = {"gradcam": "gradcam", "random": "random", "gradient": "gradient"}
GRID_ITEMS = [[0, 4, 7, 1], [2, 5, 8, 3]]
NO_GRIDS = "grid.n = 2 needs 4 classes with confidently and correctly classified items, but only 1 have any"


def grid_map_stores(root: Path, data_path: Path) -> list[Path]:
    """The grid localisation jobs' kept-maps stores of the synthetic study (as :func:`salbench.jobs.grid_score`
    writes them): two grids of the data store's items for cnn_a, none for cnn_b."""
    import torch

    from salbench.grid import cell_fractions, tile
    from salbench.store import open_store

    data = open_store(data_path)
    rng = np.random.default_rng(1)
    paths = []
    for model, items in (("cnn_a", np.asarray(GRID_ITEMS)), ("cnn_b", np.zeros((0, 4), dtype=np.int64))):
        images = tile(torch.from_numpy(data["image"].values[items.reshape(-1)]).reshape(*items.shape, 3, SIZE, SIZE))
        on_cell = np.zeros((4, 2 * SIZE, 2 * SIZE), dtype=np.float32)
        for k in range(4):
            on_cell[k, (k // 2) * SIZE:(k // 2 + 1) * SIZE, (k % 2) * SIZE:(k % 2 + 1) * SIZE] = 1.0
        for method, registered in GRID_METHODS.items():
            maps = {"gradcam": np.broadcast_to(on_cell, (len(items), *on_cell.shape)),
                    "random": np.ones((len(items), *on_cell.shape), dtype=np.float32),
                    "gradient": rng.normal(size=(len(items), *on_cell.shape))}[method].astype(np.float32)
            share = (cell_fractions(torch.from_numpy(maps.reshape(-1, 2 * SIZE, 2 * SIZE)), 2).numpy() if len(items)
                     else np.zeros((0, 4)))
            scores = share.reshape(len(items), 4, 4)[:, np.arange(4), np.arange(4)]
            ds = xr.Dataset(
                {"saliency": (("item", "cell", "y", "x"), maps), "score": (("item", "cell"), scores),
                 "cell_target": (("item", "cell"), HAND_TARGETS[items].astype(np.int64)),
                 "image": (("item", "channel", "y", "x"), images.numpy())},
                coords={"item": np.arange(len(items), dtype=np.int64), "cell": np.arange(4, dtype=np.int64)},
                attrs={"dataset": "shapes", "model": model, "method": method, "method_name": registered, "n": 2,
                       "n_grids_built": len(items), "classes": CLASSES, "grid_store_sha256": f"grids-{model}",
                       "empty_reason": "" if len(items) else NO_GRIDS},
            )
            paths.append(write_store(ds, root / model / f"{method}.zarr"))
    return paths


#: what the score jobs of the last model record as skipped (a mask metric on a data set without masks)
SKIPPED = {"relevance_mass": "data set 'shapes' has no ground-truth masks, which relevance mass needs"}


def _scores(rng: np.random.Generator, path: Path, model: str, method: str) -> Path:
    items = [f"img{i:02d}" for i in range(N_ITEMS)]
    frames = []
    for metric in METRIC_INFO:
        if (model, method, metric) == ("cnn_a", "gradient", "pointing_game"):
            values = HAND_VALUES
        elif metric == "pointing_game":
            values = (rng.random(N_ITEMS) < 0.5).astype(float)
        else:
            values = rng.random(N_ITEMS)
        frames.append(pd.DataFrame({"dataset": "shapes", "model": model, "method": method, "item": items,
                                    "target": HAND_TARGETS, "metric": metric, "value": values,
                                    "skipped_metrics": json.dumps(SKIPPED if model == MODELS[-1] else {})}))
    path.parent.mkdir(parents=True, exist_ok=True)
    write_table(pd.concat(frames, ignore_index=True), path)  # checksummed, as the score job writes it
    return path


#: points of the synthetic deletion curves (the score job's curves tables: one row per item, metric and point)
CURVE_STEPS = 5
#: the rate at which each method's synthetic deletion curve falls (a faithful map's falls fastest)
CURVE_RATES = {"gradient": 4.0, "gradcam": 6.0, "random": 1.0, "edges": 1.5}


def curve_values(method: str, n_items: int, seed: int = 1) -> np.ndarray:
    """``[n_items, CURVE_STEPS]`` synthetic deletion curves: ``exp(-rate * f)`` times a per-item level in
    [0.6, 1] (own generator, so the scores' draws are unchanged)."""
    level = np.random.default_rng([seed, len(method)]).uniform(0.6, 1.0, size=(n_items, 1))
    return level * np.exp(-CURVE_RATES[method] * np.linspace(0, 1, CURVE_STEPS))[None]


def _curves(path: Path, model: str, method: str) -> Path:
    """The curves table the score job writes beside ``method``'s scores: deletion curves, or none for the last
    model's ``edges`` control (a study where a job scored no curve metric writes an empty table)."""
    items = [f"img{i:02d}" for i in range(N_ITEMS)]
    empty = (model, method) == (MODELS[-1], "edges")
    n = 0 if empty else N_ITEMS
    values = curve_values(method, N_ITEMS)[:n]
    table = pd.DataFrame({
        "dataset": "shapes", "model": model, "method": method, "item": np.repeat(items[:n], CURVE_STEPS),
        "target": np.repeat(HAND_TARGETS[:n], CURVE_STEPS).astype(np.int64), "metric": "deletion_auc",
        "step": np.tile(np.arange(CURVE_STEPS), n).astype(np.int64),
        "fraction": np.tile(np.linspace(0, 1, CURVE_STEPS), n), "value": values.reshape(-1)})
    path.parent.mkdir(parents=True, exist_ok=True)
    write_table(table, path)
    return path
