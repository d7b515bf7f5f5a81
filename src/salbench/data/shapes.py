"""Synthetic shapes data sets with exact ground-truth masks (the embedded default's data).

``shapes``: one class object per image (circle, square, triangle, cross, ring or star, at random
position, size, rotation and colour) on a textured background with neutral distractors.
``shapes_pair``: two objects of different classes per image, one item per object, for evaluating
class-specific localisation; models are trained on ``shapes``.

Everything is generated from ``seed``: each split has its own ``SeedSequence`` stream and each image
its own child stream, so image ``i`` of a split does not depend on how many images the split has.
Stored and verified as :class:`~salbench.data.splits.NpzSplitSource` splits.
"""

from __future__ import annotations

import abc
from pathlib import Path
from typing import Any, ClassVar, Iterator

import numpy as np

from ..params import ParamError
from .base import Items, register_dataset
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
        """The items of ``split``, rendered from the seed."""
        p = self.params
        n, size, k = p[f"n_{split}"], p["image_size"], self.objects
        config = SceneConfig(size, p["radius_min"], p["radius_max"], p["max_distractors"])
        split_seq = np.random.SeedSequence(p["seed"], spawn_key=(self.stream, SPLITS.index(split)))
        class_sets = self._class_sets(np.random.default_rng(split_seq), n)
        images = np.zeros((n * k, size, size, 3), np.uint8)
        masks = np.zeros((n * k, size, size), bool)
        targets = np.zeros(n * k, np.int64)
        for i, (child, classes) in enumerate(zip(split_seq.spawn(n), class_sets)):
            scene = render_scene(np.random.default_rng(child), config, classes)
            images[i * k:(i + 1) * k], masks[i * k:(i + 1) * k], targets[i * k:(i + 1) * k] = (
                scene.image, scene.masks, scene.targets)
        image_ids = [f"{split}-{i:05d}" for i in range(n) for _ in range(k)]
        return Items(item_ids=self._item_ids(image_ids, class_sets), image_ids=image_ids,
                     images=images, targets=targets, masks=masks)

    @abc.abstractmethod
    def _class_sets(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """Class indices [n, objects] for the images of a split."""

    def _item_ids(self, image_ids: list[str], class_sets: np.ndarray) -> list[str]:
        """Item ids; with one object per image they are the image ids."""
        return list(image_ids)

    def make_splits(self, root: Path) -> Iterator[tuple[str, Items]]:
        """Every split, rendered from the seed (``root`` is not read)."""
        for split in SPLITS:
            yield split, self.generate(split)


_COMMON = {"image_size": 64, "n_val": 500, "n_eval": 200, "seed": 0, "max_distractors": 3}


@register_dataset("shapes")
class Shapes(_ShapesBase):
    """Synthetic shapes: one object of 6 classes on textured backgrounds, exact masks."""

    defaults: ClassVar[dict[str, Any]] = {**_COMMON, "n_train": 4000, "radius_min": 0.12, "radius_max": 0.24}

    def _class_sets(self, rng: np.random.Generator, n: int) -> np.ndarray:
        k = len(self.classes)  # a fresh permutation per block of k images: balanced, prefix-stable
        return np.concatenate([rng.permutation(k) for _ in range(-(-n // k))] or [np.zeros(0, int)])[:n, None]


@register_dataset("shapes_pair")
class ShapesPair(_ShapesBase):
    """Synthetic shapes, two objects of different classes per image, one item per object (evaluation)."""

    defaults: ClassVar[dict[str, Any]] = {**_COMMON, "n_train": 0, "n_val": 0, "radius_min": 0.12, "radius_max": 0.18}
    objects = 2
    stream = 1

    def _class_sets(self, rng: np.random.Generator, n: int) -> np.ndarray:
        return np.array([rng.choice(len(self.classes), 2, replace=False) for _ in range(n)]).reshape(n, 2)

    def _item_ids(self, image_ids: list[str], class_sets: np.ndarray) -> list[str]:
        return [f"{image}-{self.classes[c]}" for image, c in zip(image_ids, class_sets.ravel())]
