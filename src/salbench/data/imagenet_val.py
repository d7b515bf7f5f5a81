"""ImageNet (ILSVRC 2012) validation images with class boxes: a manual download (Russakovsky et al. 2015).

ImageNet's terms require each user to download it from image-net.org, so ``fetch`` reads files the user
put under ``root`` (see :data:`LAYOUT`; each archive may instead be extracted in place) and says exactly
which are missing. Labels come from the devkit: ``meta.mat`` maps ILSVRC2012_IDs to WordNet ids, and the
ground-truth file gives each validation image's ILSVRC2012_ID; the target is the WordNet id's rank among
the 1000 sorted leaf synsets, the class index of torchvision's (and timm's) ImageNet models. An item's
mask is the union of the validation XML's boxes of its class (pixel-inclusive, 1-based, rasterised at the
image's size), fitted to ``image_size`` with the image. Eval = ``n_eval`` images drawn by ``seed``
(Adebayo et al. 2018 use 200); train and val are empty (ImageNet models come pretrained).
"""

from __future__ import annotations

import io
import xml.etree.ElementTree as ET
from functools import lru_cache
from pathlib import Path
from typing import Any, ClassVar, Iterator

import numpy as np

from ..params import ParamError
from .base import Items, register_dataset
from .images import (Fit, box_mask, check_count, check_found, check_image_params, iter_members, open_image,
                     read_members, seeded_subset, stack_items, stack_masks)
from .splits import DataSetError, NpzSplitSource

N_CLASSES = 1000
N_VAL = 50000
IMAGES_ARCHIVE, IMAGES_FOLDER = "ILSVRC2012_img_val.tar", "ILSVRC2012_img_val"
BOXES_ARCHIVE, BOXES_FOLDER = "ILSVRC2012_bbox_val_v3.tgz", "val"
DEVKIT_ARCHIVE, DEVKIT_FOLDER = "ILSVRC2012_devkit_t12.tar.gz", "ILSVRC2012_devkit_t12"
META = f"{DEVKIT_FOLDER}/data/meta.mat"
GROUND_TRUTH = f"{DEVKIT_FOLDER}/data/ILSVRC2012_validation_ground_truth.txt"
#: (archive, or the folder extracting it under root gives, and what it holds)
LAYOUT: tuple[tuple[str, str, str], ...] = (
    (IMAGES_ARCHIVE, f"{IMAGES_FOLDER}/", "the 50,000 validation images ILSVRC2012_val_00000001.JPEG ... (6.3 GB)"),
    (BOXES_ARCHIVE, f"{BOXES_FOLDER}/", "the validation boxes val/ILSVRC2012_val_00000001.xml ..."),
    (DEVKIT_ARCHIVE, f"{DEVKIT_FOLDER}/", "the devkit's data/meta.mat and data/ILSVRC2012_validation_ground_truth.txt"),
)


@lru_cache(maxsize=1)
def imagenet_classes() -> tuple[str, ...]:
    """The 1000 ImageNet class names in class-index order (torchvision's weight metadata)."""
    from torchvision.models import ResNet50_Weights

    return tuple(ResNet50_Weights.IMAGENET1K_V1.meta["categories"])


class ImageNetClasses:
    """A ``classes`` class attribute read from :func:`imagenet_classes` on first access, not at import (importing
    torchvision costs seconds in every job that imports :mod:`salbench.data`)."""

    def __get__(self, obj: object, owner: type) -> tuple[str, ...]:
        return imagenet_classes()


def image_name(index: int) -> str:
    """File name of validation image ``index`` (1-based)."""
    return f"ILSVRC2012_val_{index:08d}.JPEG"


def missing_files_message(root: Path, missing: list[str]) -> str:
    lines = [f"ImageNet validation is a manual download: get the files from https://image-net.org "
             f"(ILSVRC 2012, after accepting its terms) and put them in {root.resolve()}/ "
             "(or set datasets.<name>.params.root to the folder that holds them):"]
    lines += [f"  {archive:<30} {what}; or extract it there as {folder}" for archive, folder, what in LAYOUT]
    lines.append(f"missing: {', '.join(missing)}")
    return "\n".join(lines)


def leaf_wnids(meta_mat: bytes) -> dict[int, str]:
    """``{ILSVRC2012_ID: WordNet id}`` of the devkit's 1000 leaf synsets (``num_children == 0``)."""
    from scipy.io import loadmat

    synsets = loadmat(io.BytesIO(meta_mat), squeeze_me=True)["synsets"]
    ids = {int(s["ILSVRC2012_ID"]): str(s["WNID"]) for s in synsets if int(s["num_children"]) == 0}
    if len(ids) != N_CLASSES:
        raise DataSetError(f"devkit {META} lists {len(ids)} leaf synsets, ImageNet has {N_CLASSES}")
    return ids


def parse_boxes(xml: bytes, name: str) -> tuple[tuple[int, int] | None, list[tuple[str, tuple[float, ...]]]]:
    """``((width, height) or None, [(wnid, (xmin, ymin, xmax, ymax)), ...])`` of a validation XML."""
    try:
        tree = ET.fromstring(xml)
    except ET.ParseError as err:
        raise DataSetError(f"{name} is not valid XML ({err})") from None
    size = tree.find("size")
    dims = None
    if size is not None and size.findtext("width") and size.findtext("height"):
        dims = (int(size.findtext("width")), int(size.findtext("height")))
    boxes = []
    for obj in tree.iter("object"):
        box = obj.find("bndbox")
        if box is None:
            continue
        try:
            coords = tuple(float(box.findtext(k)) for k in ("xmin", "ymin", "xmax", "ymax"))
        except (TypeError, ValueError):
            raise DataSetError(f"{name}: an object's bndbox lacks xmin/ymin/xmax/ymax") from None
        boxes.append((obj.findtext("name", "").strip(), coords))
    return dims, boxes


@register_dataset("imagenet_val")
class ImageNetVal(NpzSplitSource):
    """ImageNet validation images (manual download) with masks from their class boxes (Russakovsky et al. 2015)."""

    citation: ClassVar[str] = ("Russakovsky, Deng, Su, Krause, Satheesh, Ma, Huang, Karpathy, Khosla, Bernstein, "
                               "Berg & Fei-Fei. ImageNet Large Scale Visual Recognition Challenge. IJCV 115:211-252, "
                               "2015.")
    classes: ClassVar[tuple[str, ...]] = ImageNetClasses()  # type: ignore[assignment]
    #: ``root``: where the user put the files (relative to the workflow's folder)
    defaults: ClassVar[dict[str, Any]] = {"root": "resources/manual/imagenet", "image_size": 224,
                                          "resize": "center_crop", "n_eval": 200, "seed": 0}

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        check_image_params(self.name, self.params)
        check_count(self.name, self.params, "n_eval")
        if not isinstance(self.params["root"], str) or not self.params["root"]:
            raise ParamError(f"dataset {self.name!r}: root must be a folder path, got {self.params['root']!r}")

    def locate(self) -> tuple[Path, Path, Path]:
        """The images, boxes and devkit containers (an archive, or ``root`` / the folder holding the
        extracted files); a :class:`DataSetError` saying what to put where when any is missing."""
        root = Path(self.params["root"])
        found, missing = [], []
        for archive, folder, _ in LAYOUT:
            if (root / archive).is_file():
                found.append(root / archive)
            elif (root / folder).is_dir():
                found.append(root / IMAGES_FOLDER if archive == IMAGES_ARCHIVE else root)
            else:
                missing.append(f"{root / archive} (or the folder {root / folder})")
        if missing:
            raise DataSetError(missing_files_message(root, missing))
        images, boxes, devkit = found
        return images, boxes, devkit

    def provenance(self) -> dict[str, Any]:
        return {"manual_files": {str(p): (p.stat().st_size if p.is_file() else "folder") for p in self.locate()}}

    def make_splits(self, root: Path) -> Iterator[tuple[str, Items]]:
        p = self.params
        images_at, boxes_at, devkit_at = self.locate()
        devkit = read_members(devkit_at, [META, GROUND_TRUTH], "of the ImageNet devkit")
        wnids = leaf_wnids(devkit[META])
        index = {wnid: k for k, wnid in enumerate(sorted(wnids.values()))}
        truth = [int(v) for v in devkit[GROUND_TRUTH].decode().split()]
        if len(truth) != N_VAL or not set(truth) <= set(wnids):
            raise DataSetError(f"{devkit_at}: {GROUND_TRUTH} should list {N_VAL} ILSVRC2012_IDs of leaf synsets, "
                               f"has {len(truth)}")
        chosen = [int(k) + 1 for k in seeded_subset(N_VAL, p["n_eval"], p["seed"])]
        xmls = read_members(boxes_at, [f"{BOXES_FOLDER}/{image_name(i)[:-5]}.xml" for i in chosen],
                            "of the ImageNet validation boxes")
        by_name = {image_name(i): i for i in chosen}
        fitted: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        for name, data in iter_members(images_at, by_name):
            i = by_name[name]
            wnid = wnids[truth[i - 1]]
            image = open_image(data, f"{images_at}:{name}")
            xml_name = f"{BOXES_FOLDER}/{name[:-5]}.xml"
            dims, boxes = parse_boxes(xmls[xml_name], xml_name)
            sx, sy = (image.width / dims[0], image.height / dims[1]) if dims else (1.0, 1.0)
            own = [(x0 * sx, y0 * sy, x1 * sx, y1 * sy) for label, (x0, y0, x1, y1) in boxes if label == wnid]
            fit = Fit.of(image.width, image.height, p["image_size"], p["resize"])
            fitted[i] = (fit.image(image), fit.mask(box_mask(image.height, image.width, own)))
        check_found(images_at, by_name, {image_name(i) for i in fitted}, "of the ImageNet validation images")
        size = p["image_size"]
        empty = Items(item_ids=[], image_ids=[], images=stack_items([], size), targets=np.zeros(0, np.int64))
        yield "train", empty
        yield "val", empty
        ids = [f"val-{i:08d}" for i in chosen]
        yield "eval", Items(item_ids=ids, image_ids=list(ids), images=stack_items([fitted[i][0] for i in chosen], size),
                            targets=np.asarray([index[wnids[truth[i - 1]]] for i in chosen], dtype=np.int64),
                            masks=stack_masks([fitted[i][1] for i in chosen], size))
