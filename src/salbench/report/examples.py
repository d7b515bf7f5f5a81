"""The items and maps the report's example figures show: the first items of a data store (the same items for every
method) and any further items by id, and each maps store's maps of them.

Read by the example-maps and gallery sections; the stores' checksums are verified on open.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

import numpy as np

from ..store import open_store


@dataclass(frozen=True)
class Items:
    """Items of one data store: ids, uint8 images [K,C,H,W], masks [K,H,W] (None without masks) and row labels
    (item id and class name)."""

    ids: list[str]
    images: np.ndarray
    masks: np.ndarray | None
    labels: list[str]

    def subset(self, ids: list[str]) -> "Items":
        """The items ``ids`` (each must be held), in that order."""
        index = {item: k for k, item in enumerate(self.ids)}
        rows = [index[i] for i in ids]
        return Items(ids=list(ids), images=self.images[rows], masks=None if self.masks is None else self.masks[rows],
                     labels=[self.labels[r] for r in rows])


def read_items(path: Path, first: int, extra: Iterable[str] = ()) -> Items:
    """The first ``first`` items of a data store and the ``extra`` items it holds (ids of other kinds, e.g. grid
    cells, are left out), first items first."""
    ds = open_store(path)
    all_ids = [str(i) for i in ds["item"].values]
    position = {item: k for k, item in enumerate(all_ids)}
    rows = list(range(min(first, len(all_ids))))
    rows += sorted({position[i] for i in extra if i in position} - set(rows))
    classes = list(ds.attrs.get("classes", []))
    targets = ds["target"].values[rows].astype(int)
    has_masks = "mask" in ds and ds.attrs.get("has_masks", True)
    ids = [all_ids[r] for r in rows]
    return Items(ids=ids, images=ds["image"].values[rows], masks=ds["mask"].values[rows] if has_masks else None,
                 labels=[f"{i}\n{classes[t] if 0 <= t < len(classes) else t}" for i, t in zip(ids, targets)])


@dataclass(frozen=True)
class StoreMaps:
    """One maps store's maps of the wanted items [K,H,W] (float32) and whether the method's maps are signed."""

    dataset: str
    model: str
    method: str
    items: list[str]
    maps: np.ndarray
    signed: bool


def read_maps(path: Path, wanted: list[str]) -> StoreMaps:
    """A maps store's maps of the items ``wanted`` (all must be in it: a clear error names the missing ones);
    ``signed`` looks at all its maps."""
    ds = open_store(path)
    held = {str(i) for i in ds["item"].values}
    missing = sorted(set(wanted) - held)
    if missing:
        raise ValueError(f"maps store {path} lacks the items {', '.join(missing)}")
    saliency = ds["saliency"]
    signed = bool(np.nanmin(saliency.values) < 0) if saliency.size else False
    maps = saliency.sel(item=np.asarray(wanted, dtype=object)).values.astype(np.float32)  # float16 stores too
    return StoreMaps(dataset=str(ds.attrs["dataset"]), model=str(ds.attrs["model"]), method=str(ds.attrs["method"]),
                     items=list(wanted), maps=maps, signed=signed)


def store_key(path: Path) -> tuple[str, str, str]:
    """``(dataset, model, method)`` of a maps store, from its attrs (checksums not verified: a cheap look)."""
    attrs = open_store(path, verify=False).attrs
    return str(attrs["dataset"]), str(attrs["model"]), str(attrs["method"])
