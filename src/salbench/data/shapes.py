"""Synthetic shapes data sets with exact ground-truth masks (the embedded default's data).

``shapes``: one class object per image (circle, square, triangle, cross, ring or star, at random
position, size, rotation and colour) on a textured background with neutral distractors.
``shapes_pair``: two objects of different classes per image, one item per object, for evaluating
class-specific localisation; models are trained on ``shapes``.

Everything is generated from ``seed``: each split has its own ``SeedSequence`` stream and each image
its own child stream, so image ``i`` of a split does not depend on how many images the split has, nor
on the chunks it is rendered in (a split of any size is rendered and written one chunk at a time).
Stored and verified as :class:`~salbench.data.splits.NpzSplitSource` splits.
"""

from __future__ import annotations

import abc
from pathlib import Path
from typing import Any, ClassVar, Iterator

import numpy as np

from ..params import ParamError
from .base import Items, concat_items, register_dataset, rows_per_chunk
from .splits import SPLITS, DataSetError, NpzSplitSource  # noqa: F401  (DataSetError: re-exported)
from .scenes import KINDS, SceneConfig, render_scene


class _ShapesBase(NpzSplitSource):
    """Shared generation, fetch and load for the shapes data sets."""

    citation: ClassVar[str] = "salbench synthetic shapes (this project)"
    classes: ClassVar[tuple[str, ...]] = KINDS
    #: stream id keeping the variants' random streams apart for one seed
    stream: ClassVar[int] = 0

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        p = self.params
        if not 0 < p["radius_min"] <= p["radius_max"] < 0.5:
            raise ParamError(f"dataset {self.name!r}: need 0 < radius_min <= radius_max < 0.5, got {p}")
        if p["image_size"] < 16 or min(p["n_train"], p["n_val"], p["n_eval"]) < 0 or p["max_distractors"] < 0:
            raise ParamError(f"dataset {self.name!r}: image_size >= 16 and non-negative counts required, got {p}")

    def generate(self, split: str) -> Items:
        """The items of ``split``, rendered from the seed (all in memory: :meth:`generate_chunks` streams)."""
        return concat_items(self.generate_chunks(split))

    def generate_chunks(self, split: str, images: int | None = None) -> Iterator[Items]:
        """The items of ``split`` rendered in consecutive chunks of ``images`` images (about
        :data:`~salbench.data.base.CHUNK_BYTES` each by default; at least one chunk, possibly empty): the
        same items whatever the chunk size, with memory bounded by one chunk."""
        p = self.params
        n, size, k = p[f"n_{split}"], p["image_size"], self.objects
        images = images or rows_per_chunk(k * size * size * 4)  # an image (3 bytes a pixel) and k masks
        config = SceneConfig(size, p["radius_min"], p["radius_max"], p["max_distractors"])
        split_seq = np.random.SeedSequence(p["seed"], spawn_key=(self.stream, SPLITS.index(split)))
        class_sets = self._class_sets(np.random.default_rng(split_seq))
        for start in range(0, max(n, 1), images):
            count = min(images, n - start)
            children = split_seq.spawn(count)  # the i-th spawned child is image i's stream, in any chunking
            scenes = [render_scene(np.random.default_rng(child), config, next(class_sets)) for child in children]
            image_ids = [f"{split}-{i:05d}" for i in range(start, start + count) for _ in range(k)]
            targets = np.array([t for scene in scenes for t in scene.targets], np.int64)
            yield Items(item_ids=self._item_ids(image_ids, targets), image_ids=image_ids,
                        images=np.stack([scene.image for scene in scenes for _ in range(k)])
                        if scenes else np.zeros((0, size, size, 3), np.uint8),
                        targets=targets,
                        masks=np.concatenate([scene.masks for scene in scenes]) if scenes
                        else np.zeros((0, size, size), bool))

    @abc.abstractmethod
    def _class_sets(self, rng: np.random.Generator) -> Iterator[np.ndarray]:
        """Class indices ``[objects]`` of each image of a split in turn, drawn from ``rng``."""

    def _item_ids(self, image_ids: list[str], targets: np.ndarray) -> list[str]:
        """Item ids; with one object per image they are the image ids."""
        return list(image_ids)

    def make_splits(self, root: Path) -> Iterator[tuple[str, Iterator[Items]]]:
        """Every split, rendered from the seed in chunks (``root`` is not read)."""
        for split in SPLITS:
            yield split, self.generate_chunks(split)


_COMMON = {"image_size": 64, "n_val": 500, "n_eval": 200, "seed": 0, "max_distractors": 3}


@register_dataset("shapes")
class Shapes(_ShapesBase):
    """Synthetic shapes: one object of 6 classes on textured backgrounds, exact masks."""

    defaults: ClassVar[dict[str, Any]] = {**_COMMON, "n_train": 4000, "radius_min": 0.12, "radius_max": 0.24}

    def _class_sets(self, rng: np.random.Generator) -> Iterator[np.ndarray]:
        k = len(self.classes)  # a fresh permutation per block of k images: balanced, prefix-stable
        while True:
            for target in rng.permutation(k):
                yield np.array([target])


@register_dataset("shapes_pair")
class ShapesPair(_ShapesBase):
    """Synthetic shapes, two objects of different classes per image, one item per object (evaluation)."""

    defaults: ClassVar[dict[str, Any]] = {**_COMMON, "n_train": 0, "n_val": 0, "radius_min": 0.12, "radius_max": 0.18}
    objects = 2
    stream = 1

    def _class_sets(self, rng: np.random.Generator) -> Iterator[np.ndarray]:
        while True:
            yield rng.choice(len(self.classes), 2, replace=False)

    def _item_ids(self, image_ids: list[str], targets: np.ndarray) -> list[str]:
        return [f"{image}-{self.classes[c]}" for image, c in zip(image_ids, targets)]
