"""CUB-200-2011 (Wah et al. 2011) with its foreground segmentations: the data of MDM's evaluation.

``fetch`` downloads the official image archive and the separate segmentation archive (both pinned sha256,
resumable, cached: see :mod:`.download`) and reads the official metadata (``images.txt``,
``image_class_labels.txt``, ``train_test_split.txt``, ``classes.txt``). Splits: eval = the official test
images (all, or ``n_eval`` drawn by ``seed``) with masks; val = ``n_val`` official training images drawn
by ``seed``; train = the other training images (all, or ``n_train`` of them). Images and masks are
resized to ``image_size`` (``stretch`` by default: the whole bird stays in, as MDM resizes to 224).

Mask: the segmentation PNGs are soft (grey = the fraction of annotators who marked the pixel foreground,
in fifths of 255). Like MDM's evaluation, which thresholds the ground truth at 0.5, an item's mask is the
pixels whose grey value, resized bilinearly with the image and scaled to [0, 1], exceeds
``mask_threshold`` (0.5: at least 3 of the 5 annotators). Targets are ``class_id - 1`` (0..199).
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath
from typing import Any, ClassVar, Iterator

import numpy as np

from ..params import ParamError
from .base import Items, register_dataset
from .download import Remote, fetch_file
from .images import (ImageSplitSource, Fit, check_count, check_found, check_image_params, iter_members, open_image,
                     read_members, seeded_subset, stack_items, stack_masks)
from .splits import DataSetError

#: CaltechDATA records 65de6-vp158 (images) and w9d68-gec53 (segmentations); sha256 as pinned by
#: tensorflow-datasets (url_checksums/caltech_birds2011.txt) and torchvision's prototype data sets
URL = "https://data.caltech.edu/records/65de6-vp158/files/CUB_200_2011.tgz?download=1"
SHA256 = "0c685df5597a8b24909f6a7c9db6d11e008733779a671760afef78feb49bf081"  # 1,150,585,339 bytes
SEGMENTATIONS_URL = "https://data.caltech.edu/records/w9d68-gec53/files/segmentations.tgz?download=1"
SEGMENTATIONS_SHA256 = "dc77f6cffea0cbe2e41d4201115c8f29a6320ecb04fffd2444f51b8066e4b84f"  # 39,272,883 bytes
FOLDER = "CUB_200_2011"
META_FILES = ("images.txt", "image_class_labels.txt", "train_test_split.txt", "classes.txt")
N_CLASSES = 200


def parse_table(text: str, what: str) -> dict[int, str]:
    """``{id: rest}`` of CUB's ``<id> <value>`` lines."""
    table = {}
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        key, _, value = line.strip().partition(" ")
        if not key.isdigit() or not value:
            raise DataSetError(f"{what} line {number} is not '<id> <value>': {line!r}")
        table[int(key)] = value.strip()
    return table


def segmentation_name(image_path: str) -> str:
    """``images/<class dir>/<stem>.jpg`` -> ``segmentations/<class dir>/<stem>.png`` (the archive's layout)."""
    return f"segmentations/{PurePosixPath(image_path).with_suffix('.png')}"


@register_dataset("cub200")
class CUB200(ImageSplitSource):
    """CUB-200-2011: 200 bird species, test split with foreground segmentation masks (Wah et al. 2011)."""

    citation: ClassVar[str] = ("Wah, Branson, Welinder, Perona & Belongie. The Caltech-UCSD Birds-200-2011 Dataset. "
                               "Tech. report CNS-TR-2011-001, Caltech, 2011.")
    #: the catalog lists the class numbers 001..200; the names come from classes.txt (``load`` reads the manifest)
    classes: ClassVar[tuple[str, ...]] = tuple(f"{i:03d}" for i in range(1, N_CLASSES + 1))
    defaults: ClassVar[dict[str, Any]] = {
        "url": URL, "sha256": SHA256, "segmentations_url": SEGMENTATIONS_URL,
        "segmentations_sha256": SEGMENTATIONS_SHA256,
        "image_size": 224, "resize": "stretch", "mask_threshold": 0.5,
        "n_train": None, "n_val": 500, "n_eval": None, "seed": 0,
    }

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        p = self.params
        check_image_params(self.name, p)
        for key in ("n_train", "n_val", "n_eval"):
            check_count(self.name, p, key)
        if p["n_val"] is None:
            raise ParamError(f"dataset {self.name!r}: n_val must be an integer >= 0, got None")
        threshold = p["mask_threshold"]
        if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not 0 <= threshold < 1:
            raise ParamError(f"dataset {self.name!r}: mask_threshold must be in [0, 1), got {threshold!r}")

    def remotes(self) -> tuple[Remote, Remote]:
        p = self.params
        return (Remote(p["url"], p["sha256"], f"{p['sha256'][:16]}-CUB_200_2011.tgz"),
                Remote(p["segmentations_url"], p["segmentations_sha256"],
                       f"{p['segmentations_sha256'][:16]}-segmentations.tgz"))

    def provenance(self) -> dict[str, Any]:
        return {"archive_sha256": self.params["sha256"],
                "segmentations_sha256": self.params["segmentations_sha256"]}

    def make_splits(self, root: Path) -> Iterator[tuple[str, Items]]:
        p = self.params
        archive, segmentations = (fetch_file(remote) for remote in self.remotes())
        meta = read_members(archive, [f"{FOLDER}/{name}" for name in META_FILES], "of CUB-200-2011's metadata")
        paths, labels, is_train, class_names = (
            parse_table(meta[f"{FOLDER}/{name}"].decode(), name) for name in META_FILES)
        if sorted(class_names) != list(range(1, len(class_names) + 1)):
            raise DataSetError(f"{archive}: classes.txt does not number its classes 1..{len(class_names)}")
        self.classes = tuple(class_names[i] for i in sorted(class_names))
        train_ids = [i for i in sorted(paths) if is_train.get(i) == "1"]
        test_ids = [i for i in sorted(paths) if is_train.get(i) == "0"]
        if p["n_val"] > len(train_ids):
            raise ParamError(f"dataset {self.name!r}: n_val {p['n_val']} exceeds the {len(train_ids)} training images")
        val_pick = set(seeded_subset(len(train_ids), p["n_val"], p["seed"]).tolist())
        val_ids = [i for k, i in enumerate(train_ids) if k in val_pick]
        rest = [i for k, i in enumerate(train_ids) if k not in val_pick]
        train_ids = [rest[k] for k in seeded_subset(len(rest), p["n_train"], p["seed"])]
        eval_ids = [test_ids[k] for k in seeded_subset(len(test_ids), p["n_eval"], p["seed"])]
        images = self._read_images(archive, paths, [*train_ids, *val_ids, *eval_ids])
        masks = self._read_masks(segmentations, paths, eval_ids, images)
        for split, ids in (("train", train_ids), ("val", val_ids), ("eval", eval_ids)):
            targets = np.asarray([int(labels[i]) - 1 for i in ids], dtype=np.int64)
            if len(targets) and not (0 <= targets.min() and targets.max() < len(self.classes)):
                raise DataSetError(f"{archive}: image_class_labels.txt has labels outside 1..{len(self.classes)}")
            item_ids = [f"cub-{i:05d}" for i in ids]
            yield split, Items(item_ids=item_ids, image_ids=list(item_ids),
                               images=stack_items([images[i][0] for i in ids], p["image_size"]), targets=targets,
                               masks=stack_masks([masks[i] for i in ids], p["image_size"]) if split == "eval" else None)

    def _read_images(self, archive: Path, paths: dict[int, str], ids: list[int]) -> dict[int, tuple[np.ndarray, Fit]]:
        """``{id: (fitted image, its Fit)}``, decoded while the archive streams past."""
        p = self.params
        by_name = {f"{FOLDER}/images/{paths[i]}": i for i in ids}
        out = {}
        for name, data in iter_members(archive, by_name):
            image = open_image(data, f"{archive}:{name}")
            fit = Fit.of(image.width, image.height, p["image_size"], p["resize"])
            out[by_name[name]] = (fit.image(image), fit)
        check_found(archive, by_name, {f"{FOLDER}/images/{paths[i]}" for i in out}, "of CUB-200-2011's images")
        return out

    def _read_masks(self, archive: Path, paths: dict[int, str], ids: list[int],
                    images: dict[int, tuple[np.ndarray, Fit]]) -> dict[int, np.ndarray]:
        """``{id: bool mask}`` of the segmentation PNGs (grey / 255 > ``mask_threshold``, fitted like the image)."""
        by_name = {segmentation_name(paths[i]): i for i in ids}
        out = {}
        for name, data in iter_members(archive, by_name):
            grey = np.asarray(open_image(data, f"{archive}:{name}").convert("L"), dtype=np.float32) / 255.0
            out[by_name[name]] = images[by_name[name]][1].soft_mask(grey, self.params["mask_threshold"])
        check_found(archive, by_name, {segmentation_name(paths[i]) for i in out}, "of CUB-200-2011's segmentations")
        return out
