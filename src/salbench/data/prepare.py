"""Turn a fetched data set's evaluation items into ``results/{dataset}/data.zarr``."""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from ..store import object_strings, open_store, write_store_parts
from .base import DataSource, Items, manifest_sha256, rows_per_chunk


def items_to_dataset(items: Items, attrs: dict[str, Any]) -> xr.Dataset:
    """Items as an xarray Dataset: image (item, channel, y, x) uint8, mask (item, y, x) bool, difficult (item)."""
    n, height, width = len(items), items.images.shape[1], items.images.shape[2]
    masks = items.masks if items.masks is not None else np.zeros((n, height, width), dtype=bool)
    difficult = items.difficult if items.difficult is not None else np.zeros(n, dtype=bool)
    return xr.Dataset(
        {
            "image": (("item", "channel", "y", "x"), np.ascontiguousarray(items.images.transpose(0, 3, 1, 2))),
            "mask": (("item", "y", "x"), masks.astype(bool)),
            "difficult": (("item",), difficult.astype(bool)),
        },
        coords={
            "item": object_strings(items.item_ids),
            "image_id": ("item", object_strings(items.image_ids)),
            "target": ("item", np.asarray(items.targets, dtype=np.int64)),
        },
        attrs={**attrs, "has_masks": items.masks is not None},
    )


def prepare_eval_store(dataset: str, source: DataSource, root: Path, out: Path, item_chunk: int = 64) -> Path:
    """Write the eval split of ``source`` (fetched into ``root``) as the data store ``out``, reading and
    writing the items in parts of about :data:`~.base.CHUNK_BYTES`, so memory stays bounded whatever the
    split's size."""
    size = source.params.get("image_size", 224)  # an image (3 bytes a pixel) and its mask; 224: an upper bound
    parts = source.iter_items(root, "eval", rows_per_chunk(4 * size * size, multiple=item_chunk))
    first = next(parts)  # the split checked against the manifest (and a source's classes read) first
    attrs = {
        "dataset": dataset,
        "source": source.name,
        "classes": list(source.classes),
        "objects": source.objects,
        "params": source.params,
        "manifest_sha256": manifest_sha256(root),
        "manifest": json.loads((root / "manifest.json").read_text()),
    }
    return write_store_parts((items_to_dataset(items, attrs) for items in itertools.chain([first], parts)), out,
                             item_chunk)


def open_data(path: str | Path) -> xr.Dataset:
    """Open and verify a data store written by :func:`prepare_eval_store`."""
    return open_store(path)
