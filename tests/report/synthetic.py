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
    """Paths and arguments of :func:`salbench.report.build_report` for the synthetic study."""

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
        "metric_info": METRIC_INFO, "claims_file": claims,
    })


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
