"""Imagenette (Howard 2019): 10 easily classified ImageNet classes, the 320 px version ``imagenette2-320``.

A small download (342 MB, pinned sha256) that ImageNet-pretrained models understand: targets are the
classes' ImageNet indices (:data:`WNID_TO_IMAGENET`, the rank of each WordNet id among ImageNet's 1000
sorted ones), so a torchvision or timm model's logits are read directly and ``classes`` are ImageNet's
1000 names. Splits: eval = ``n_eval`` of the official ``val`` images drawn by ``seed``; train and val =
``n_train`` and ``n_val`` of the official ``train`` images (none by default: the models come
pretrained). No masks: the localisation metrics do not apply and are skipped with that reason.
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath
from typing import Any, ClassVar, Iterator

import numpy as np

from .base import Items, register_dataset
from .download import Remote, fetch_file
from .images import (IMAGE_SUFFIXES, Fit, check_count, check_found, check_image_params, iter_members, list_members,
                     open_image, seeded_subset, stack_items)
from .imagenet_val import ImageNetClasses
from .splits import DataSetError, NpzSplitSource

URL = "https://s3.amazonaws.com/fast-ai-imageclas/imagenette2-320.tgz"
#: as pinned by tensorflow-datasets (datasets/imagenette/checksums.tsv)
SHA256 = "569b4497c98db6dd29f335d1f109cf315fe127053cedf69010d047f0188e158c"  # 341,663,724 bytes
FOLDER = "imagenette2-320"
#: Imagenette's WordNet ids and their ImageNet class indices (tench, English springer, cassette player,
#: chain saw, church, French horn, garbage truck, gas pump, golf ball, parachute)
WNID_TO_IMAGENET: dict[str, int] = {
    "n01440764": 0, "n02102040": 217, "n02979186": 482, "n03000684": 491, "n03028079": 497,
    "n03394916": 566, "n03417042": 569, "n03425413": 571, "n03445777": 574, "n03888257": 701,
}


@register_dataset("imagenette")
class Imagenette(NpzSplitSource):
    """Imagenette (imagenette2-320): 10 ImageNet classes, ImageNet class indices as targets, no masks."""

    citation: ClassVar[str] = "Howard. Imagenette. https://github.com/fastai/imagenette, 2019."
    classes: ClassVar[tuple[str, ...]] = ImageNetClasses()  # type: ignore[assignment]
    defaults: ClassVar[dict[str, Any]] = {"url": URL, "sha256": SHA256, "image_size": 224, "resize": "center_crop",
                                          "n_train": 0, "n_val": 0, "n_eval": 500, "seed": 0}

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        check_image_params(self.name, self.params)
        for key in ("n_train", "n_val", "n_eval"):
            check_count(self.name, self.params, key)

    def remote(self) -> Remote:
        return Remote(self.params["url"], self.params["sha256"], f"{self.params['sha256'][:16]}-{FOLDER}.tgz")

    def provenance(self) -> dict[str, Any]:
        return {"archive_sha256": self.params["sha256"], "wnid_to_imagenet": WNID_TO_IMAGENET}

    def make_splits(self, root: Path) -> Iterator[tuple[str, Items]]:
        p = self.params
        archive = fetch_file(self.remote())
        listed: dict[str, list[str]] = {"train": [], "val": []}
        for name in list_members(archive):
            parts = PurePosixPath(name).parts
            if len(parts) == 4 and parts[0] == FOLDER and parts[1] in listed and name.lower().endswith(IMAGE_SUFFIXES):
                if parts[2] not in WNID_TO_IMAGENET:
                    raise DataSetError(f"{archive}: {name} is in folder {parts[2]}, not one of Imagenette's classes")
                listed[parts[1]].append(name)
        if not listed["val"]:
            raise DataSetError(f"{archive} has no images under {FOLDER}/val/<wnid>/: not the imagenette2-320 archive")
        train_all = listed["train"]
        if (p["n_val"] or 0) + (p["n_train"] or 0) > len(train_all):
            raise DataSetError(f"{archive}: n_train + n_val exceed its {len(train_all)} training images")
        val_names = [train_all[k] for k in seeded_subset(len(train_all), p["n_val"], p["seed"])]
        rest = sorted(set(train_all) - set(val_names))
        splits = {"train": [rest[k] for k in seeded_subset(len(rest), p["n_train"], p["seed"])], "val": val_names,
                  "eval": [listed["val"][k] for k in seeded_subset(len(listed["val"]), p["n_eval"], p["seed"])]}
        wanted = {name for names in splits.values() for name in names}
        fitted = {}
        for name, data in iter_members(archive, wanted):
            image = open_image(data, f"{archive}:{name}")
            fitted[name] = Fit.of(image.width, image.height, p["image_size"], p["resize"]).image(image)
        check_found(archive, wanted, fitted, "of Imagenette's images")
        for split, names in splits.items():
            ids = [PurePosixPath(name).relative_to(FOLDER).with_suffix("").as_posix() for name in names]
            targets = np.asarray([WNID_TO_IMAGENET[PurePosixPath(name).parts[2]] for name in names], dtype=np.int64)
            yield split, Items(item_ids=ids, image_ids=list(ids), images=stack_items([fitted[n] for n in names],
                                                                                   p["image_size"]), targets=targets)
