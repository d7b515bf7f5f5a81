"""Small synthetic cluster and data stores in the layouts of ``clusters.zarr`` and ``data.zarr``, and label files."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from salbench.layerwise.labels import FORMAT, VERSION
from salbench.store import object_strings, write_store

CLASSES = ["circle", "square", "triangle"]
LAYERS = ["block1", "block2", "block3"]
SIZE = 16
FMAP_SIZES = [8, 4, 2]  # each layer's feature-map side: upscale factors 2, 4, 8 to the 16 px images
N_CLUSTERS = 8


def cluster_dataset(n_items: int = 3, kept: int = 3, seed: int = 0) -> xr.Dataset:
    """Cluster store: ``kept`` clusters per (item, layer) with weights summing to at most 100 %, the rest NaN.

    Cluster c of every item and layer is a Gaussian blob at a position depending on c, so the maps differ.
    """
    rng = np.random.default_rng(seed)
    maps = np.full((n_items, len(LAYERS), N_CLUSTERS, SIZE, SIZE), np.nan, np.float32)
    weights = np.full((n_items, len(LAYERS), N_CLUSTERS), np.nan, np.float32)
    yy, xx = np.mgrid[:SIZE, :SIZE]
    for c in range(kept):
        cy, cx = (3 + 5 * c) % SIZE, (12 - 4 * c) % SIZE
        blob = np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / 8.0)
        maps[:, :, c] = (blob - blob.min()) / (blob.max() - blob.min())
        weights[:, :, c] = rng.uniform(10, 30, size=(n_items, len(LAYERS)))
    return xr.Dataset(
        {
            "cluster_map": (("item", "layer", "cluster", "y", "x"), maps),
            "cluster_weight": (("item", "layer", "cluster"), weights),
            "cluster_size": (("item", "layer", "cluster"), np.where(np.isnan(weights), 0, 4).astype(np.int16)),
            "n_kept_channels": (("item", "layer"), np.full((n_items, len(LAYERS)), 4 * kept, np.int16)),
        },
        coords={
            "item": object_strings([f"eval-{i:05d}" for i in range(n_items)]),
            "target": ("item", np.arange(n_items, dtype=np.int64) % len(CLASSES)),
            "layer": object_strings(LAYERS),
            "fmap_height": ("layer", np.array(FMAP_SIZES, np.int64)),
            "fmap_width": ("layer", np.array(FMAP_SIZES, np.int64)),
            "cluster": np.arange(N_CLUSTERS, dtype=np.int64),
        },
        attrs={"dataset": "toy", "model": "net"},
    )


def data_dataset(n_items: int = 3, seed: int = 0) -> xr.Dataset:
    """Data store: random uint8 images (item, channel, y, x) with the cluster store's items and targets."""
    rng = np.random.default_rng(seed)
    return xr.Dataset(
        {"image": (("item", "channel", "y", "x"), rng.integers(0, 256, (n_items, 3, SIZE, SIZE), dtype=np.uint8))},
        coords={"item": object_strings([f"eval-{i:05d}" for i in range(n_items)]),
                "target": ("item", np.arange(n_items, dtype=np.int64) % len(CLASSES))},
        attrs={"dataset": "toy", "classes": CLASSES},
    )


def write_stores(root: Path, n_items: int = 3) -> tuple[Path, Path]:
    """Write both stores under ``root`` at the workflow's paths; returns (clusters, data)."""
    clusters = write_store(cluster_dataset(n_items), root / "results/toy/net/layerwise/clusters.zarr")
    data = write_store(data_dataset(n_items), root / "results/toy/data.zarr")
    return clusters, data


def answer(image: str = "eval-00000", layer: str = "block1", cluster: int = 0, characteristic: str = "round",
           step: int = 1, guess: int | None = 0, label: int = 0, guess_id: int = 0) -> dict[str, Any]:
    """One answer row in the label file's format."""
    return {"characteristic": characteristic, "guess_id": guess_id, "percentile": step, "guessed_label_id": guess,
            "layer": layer, "cluster": cluster, "image": image, "label": label}


def label_doc(answers: list[dict[str, Any]], **header: Any) -> dict[str, Any]:
    """A label file's document for the toy stores."""
    return {"format": FORMAT, "version": VERSION, "dataset": "toy", "model": "net", "store_sha256": None,
            "classes": CLASSES, "answers": answers, **header}


def write_labels(path: Path, doc: dict[str, Any]) -> Path:
    path.write_text(json.dumps(doc))
    return path
