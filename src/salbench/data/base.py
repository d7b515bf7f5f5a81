"""The data-set registry and the item contract.

A data source fetches (downloads and verifies, or generates) its files into
``resources/datasets/{dataset}`` and reads them back as :class:`Items`. The unit of evaluation is an
item: one image with one target class and, where the data set has it, that class's ground-truth mask.
Multi-object images give one item per present class.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Iterable, Iterator

import numpy as np

from ..params import resolve_params
from ..provenance import file_sha256
from ..registry import Registry

DATASETS: Registry[type["DataSource"]] = Registry("dataset")


def register_dataset(name: str):
    """Class decorator: register a :class:`DataSource` subclass under ``name``."""

    def decorator(cls: type[DataSource]) -> type[DataSource]:
        cls.name = name
        return DATASETS.register(name)(cls)

    return decorator


def create_dataset(name: str, **params: Any) -> "DataSource":
    """Build the data source registered as ``name`` with ``params`` over its defaults."""
    return DATASETS.get(name)(**params)


def list_datasets(filter: str = "*") -> list[str]:
    """Registered data-set names matching the fnmatch ``filter``."""
    return DATASETS.names(filter)


@dataclass
class Items:
    """N evaluation (or training) items. Images are uint8 ``[N,H,W,3]``; masks bool ``[N,H,W]``."""

    item_ids: list[str]
    image_ids: list[str]
    images: np.ndarray
    targets: np.ndarray
    masks: np.ndarray | None = None
    difficult: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.item_ids)


#: memory one chunk of items may take while a data set is generated, fetched or prepared: a split of any
#: size streams through in chunks of about this many bytes (tests lower it to exercise many chunks)
CHUNK_BYTES = 64 * 2**20


def rows_per_chunk(item_bytes: int, multiple: int = 1) -> int:
    """Items per chunk of about :data:`CHUNK_BYTES` at ``item_bytes`` each: a positive multiple of ``multiple``."""
    return max(1, CHUNK_BYTES // max(1, item_bytes) // multiple) * multiple


def concat_items(parts: Iterable[Items]) -> Items:
    """One :class:`Items` from consecutive chunks (a single chunk is returned as it is, without a copy)."""
    parts = list(parts)
    if len(parts) == 1:
        return parts[0]

    def joined(name: str) -> np.ndarray | None:
        values = [getattr(part, name) for part in parts]
        return None if values[0] is None else np.concatenate(values)

    return Items(item_ids=[i for part in parts for i in part.item_ids],
                 image_ids=[i for part in parts for i in part.image_ids],
                 images=joined("images"), targets=joined("targets"), masks=joined("masks"),
                 difficult=joined("difficult"))


MANIFEST = "manifest.json"


def manifest_sha256(root: str | Path) -> str:
    """sha256 of a fetched data set's manifest (which lists the sha256 of every file): its provenance id."""
    return file_sha256(Path(root) / MANIFEST)


class DataSource(abc.ABC):
    """Base of every data set: ``fetch`` into a folder, then read splits from it."""

    name: ClassVar[str] = ""
    citation: ClassVar[str] = ""
    defaults: ClassVar[dict[str, Any]] = {}
    #: class names, index = target
    classes: ClassVar[tuple[str, ...]] = ()
    #: class objects per image; with 2, each image is two consecutive items (one per present class),
    #: and the class-sensitivity checks run on it
    objects: ClassVar[int] = 1

    def __init__(self, **params: Any) -> None:
        self.params = resolve_params("dataset", self.name, self.defaults, params)

    @abc.abstractmethod
    def fetch(self, root: Path) -> None:
        """Download-and-verify or generate the data set's files into ``root`` (and a manifest.json)."""

    @abc.abstractmethod
    def load(self, root: Path, split: str) -> Items:
        """Items of ``split`` ("train", "val" or "eval") from the files ``fetch`` wrote."""

    @abc.abstractmethod
    def iter_items(self, root: Path, split: str, rows: int | None = None) -> Iterator[Items]:
        """The items of ``split`` in consecutive chunks of ``rows`` items (all in one chunk when None), so a
        split larger than memory can be read."""
