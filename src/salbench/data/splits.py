"""Data sources stored as one verified ``.npz`` per split plus a manifest.

``fetch`` writes ``{train,val,eval}.npz`` and a ``manifest.json`` with the source's params, classes and
every file's sha256; ``load`` refuses files that are missing, do not match the manifest, or were made
with other params. Generated (shapes) and downloaded (CIFAR-10) data sets share this layout, so the
pipeline reads them the same way. A split may be made, written and read in chunks of items
(:func:`~salbench.data.npz.write_npz_chunks`, :meth:`NpzSplitSource.iter_items`), so its size is not
bounded by memory.
"""

from __future__ import annotations

import abc
import json
from pathlib import Path
from typing import Any, Iterable, Iterator

import numpy as np

from ..provenance import file_sha256
from ..store import atomic_path
from .base import MANIFEST, DataSource, Items, concat_items
from .npz import iter_npz, read_npz, write_npz_chunks

SPLITS: tuple[str, ...] = ("train", "val", "eval")


class DataSetError(RuntimeError):
    """A data set's files are missing, altered, or were made with other params."""


class NpzSplitSource(DataSource):
    """A data source whose ``fetch`` writes each split as an ``.npz`` and a manifest (see the module doc)."""

    @abc.abstractmethod
    def make_splits(self, root: Path) -> Iterator[tuple[str, Items | Iterable[Items]]]:
        """``(split, items)`` for every split in :data:`SPLITS`, generated or read from files fetched into
        ``root``; ``items`` may be an iterable of consecutive chunks (at least one) to bound memory."""

    def provenance(self) -> dict[str, Any]:
        """Extra manifest entries (e.g. the sha256 of a downloaded archive)."""
        return {}

    def fetch(self, root: Path) -> None:
        root = Path(root)
        root.mkdir(parents=True, exist_ok=True)
        files = {}
        for split, items in self.make_splits(root):
            chunks = [items] if isinstance(items, Items) else items
            path = write_npz_chunks(root / f"{split}.npz", map(_arrays, chunks))
            files[path.name] = file_sha256(path)
        manifest = {"dataset": self.name, "params": self.params, "classes": list(self.classes), "files": files,
                    **self.provenance()}
        with atomic_path(root / MANIFEST) as tmp:
            tmp.write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")

    def load(self, root: Path, split: str) -> Items:
        """Items of ``split`` from files ``fetch`` wrote, after checking them against the manifest."""
        return concat_items(self.iter_items(root, split))

    def iter_items(self, root: Path, split: str, rows: int | None = None) -> Iterator[Items]:
        """Items of ``split`` in chunks of ``rows`` (all at once when None), after checking the split's file
        against the manifest."""
        path = self._checked(Path(root), split)
        if rows is None:
            yield _items(read_npz(path))
            return
        for arrays in iter_npz(path, rows):
            yield _items(arrays)

    def _checked(self, root: Path, split: str) -> Path:
        """The split's ``.npz``, refused when missing, made with other params or not matching the manifest."""
        if split not in SPLITS:
            raise ValueError(f"unknown split {split!r}; allowed: {', '.join(SPLITS)}")
        manifest_path, path = root / MANIFEST, root / f"{split}.npz"
        if not manifest_path.is_file() or not path.is_file():
            raise DataSetError(f"{path} or {manifest_path} is missing: run fetch first")
        manifest = json.loads(manifest_path.read_text())
        if manifest["dataset"] != self.name or manifest["params"] != self.params:
            raise DataSetError(f"{root} holds {manifest['dataset']!r} with params {manifest['params']}, "
                               f"not {self.name!r} with {self.params}")
        if file_sha256(path) != manifest["files"][path.name]:
            raise DataSetError(f"{path} does not match the sha256 in {manifest_path}")
        return path


def _arrays(items: Items) -> dict[str, np.ndarray]:
    """The ``.npz`` arrays of a chunk of items (masks and difficult flags only where the source has them)."""
    arrays = {"images": items.images, "targets": items.targets,
              "image_ids": np.asarray(items.image_ids, dtype=str), "item_ids": np.asarray(items.item_ids, dtype=str)}
    if items.masks is not None:
        arrays["masks"] = items.masks
    if items.difficult is not None:
        arrays["difficult"] = items.difficult
    return arrays


def _items(arrays: dict[str, np.ndarray]) -> Items:
    return Items(item_ids=arrays["item_ids"].tolist(), image_ids=arrays["image_ids"].tolist(),
                 images=arrays["images"], targets=arrays["targets"], masks=arrays.get("masks"),
                 difficult=arrays.get("difficult"))
