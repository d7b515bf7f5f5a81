"""Your own images: a folder per class, with optional ground-truth masks.

``root/<class>/<image>`` (``.jpg``, ``.jpeg``, ``.png``, ``.bmp``, ``.gif``, ``.tif``, ``.tiff``, ``.webp``);
the class names are the folder names, sorted, and a class's index is its rank, as torchvision's
``ImageFolder`` numbers them (so a model trained with it reads the same targets). Masks, optional, from
either
- ``masks``: a folder mirroring the image paths with ``.png`` files (``masks/<class>/<image stem>.png``,
  the image's size; any nonzero pixel is object), or
- ``annotations``: a COCO-style JSON file (``images`` with ``id`` and ``file_name`` relative to ``root``,
  ``annotations`` with ``image_id`` and a polygon or RLE ``segmentation`` or a ``bbox``): an image's mask
  is the union of its annotations (the folder says which class the image shows).
Images and masks are resized to ``image_size`` (``stretch``: the whole image; or ``center_crop``).
Every image is an eval item (or ``n_eval`` of them drawn by ``seed``); train and val are empty, so pair
this data set with a user model (or a model trained on another data set, ``models_from``).
"""

from __future__ import annotations

import json
from pathlib import Path, PurePosixPath
from typing import Any, ClassVar, Iterator

import numpy as np

from ..params import ParamError
from .base import Items, register_dataset
from .images import (IMAGE_SUFFIXES, Fit, ImageSplitSource, check_count, check_image_params, coco_object_mask,
                     open_image, seeded_subset, stack_items, stack_masks)
from .splits import DataSetError


def class_folders(root: Path) -> list[str]:
    """Sorted names of the sub-folders of ``root`` that hold at least one image."""
    return sorted(d.name for d in root.iterdir() if d.is_dir() and not d.name.startswith(".")
                  and any(f.suffix.lower() in IMAGE_SUFFIXES for f in d.iterdir() if f.is_file()))


def folder_mask(path: Path) -> np.ndarray:
    """A mask PNG as bool (any nonzero colour channel; an alpha channel is ignored)."""
    image = open_image(path.read_bytes(), str(path))
    array = np.asarray(image)
    if image.mode in ("RGBA", "LA", "PA"):
        array = array[..., :-1]
    return array.any(axis=-1) if array.ndim == 3 else array != 0


@register_dataset("image_folder")
class ImageFolder(ImageSplitSource):
    """Your images, a folder per class (names sorted), optional masks (a PNG folder or a COCO-style JSON)."""

    citation: ClassVar[str] = "User-supplied images (the layout of torchvision's ImageFolder)."
    #: paths are relative to the workflow's folder; ``root`` is required
    defaults: ClassVar[dict[str, Any]] = {"root": None, "masks": None, "annotations": None, "image_size": 224,
                                          "resize": "stretch", "n_eval": None, "seed": 0}

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        p = self.params
        check_image_params(self.name, p)
        check_count(self.name, p, "n_eval")
        if not isinstance(p["root"], str) or not p["root"]:
            raise ParamError(f"dataset {self.name!r}: root must be the folder holding a sub-folder per class, "
                             f"got {p['root']!r}")
        for key in ("masks", "annotations"):
            if p[key] is not None and not (isinstance(p[key], str) and p[key]):
                raise ParamError(f"dataset {self.name!r}: {key} must be a path or null, got {p[key]!r}")
        if p["masks"] is not None and p["annotations"] is not None:
            raise ParamError(f"dataset {self.name!r}: give masks (a PNG folder) or annotations (a COCO JSON), not both")
        root = Path(p["root"])
        self.classes = tuple(class_folders(root)) if root.is_dir() else ()

    def root_error(self) -> str | None:
        """Why ``root`` is not a folder of images, one sub-folder per class (None when it is): the config check
        says it before any job, naming the data set's key, and the job that reads the images says it too."""
        root = Path(self.params["root"])
        if not root.is_dir():
            state = "is not a folder" if root.exists() else "does not exist"
            return (f"image folder {root.resolve()} {state}; put your images there as <class name>/<image file>, "
                    "one sub-folder per class")
        if not class_folders(root):
            return (f"image folder {root.resolve()} has no sub-folder holding images ({', '.join(IMAGE_SUFFIXES)}); "
                    "put your images there as <class name>/<image file>")
        return None

    def make_splits(self, root: Path) -> Iterator[tuple[str, Items]]:
        p = self.params
        images_root = Path(p["root"])
        error = self.root_error()
        if error:
            raise DataSetError(f"dataset {self.name!r} (params.root): {error}")
        self.classes = tuple(class_folders(images_root))
        names = [f"{c}/{f.name}" for c in self.classes for f in sorted((images_root / c).iterdir())
                 if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES]
        names = [names[k] for k in seeded_subset(len(names), p["n_eval"], p["seed"])]
        mask_of = self._mask_reader(names)
        images, masks = [], []
        for name in names:
            image = open_image((images_root / name).read_bytes(), str(images_root / name))
            fit = Fit.of(image.width, image.height, p["image_size"], p["resize"])
            images.append(fit.image(image))
            if mask_of is not None:
                masks.append(fit.mask(mask_of(name, image.height, image.width)))
        size = p["image_size"]
        empty = Items(item_ids=[], image_ids=[], images=stack_items([], size), targets=np.zeros(0, np.int64))
        yield "train", empty
        yield "val", empty
        ids = [PurePosixPath(name).with_suffix("").as_posix() for name in names]
        targets = np.asarray([self.classes.index(PurePosixPath(name).parts[0]) for name in names], dtype=np.int64)
        yield "eval", Items(item_ids=ids, image_ids=list(ids), images=stack_items(images, size), targets=targets,
                            masks=stack_masks(masks, size) if mask_of is not None else None)

    def _mask_reader(self, names: list[str]):
        """``(name, height, width) -> bool mask`` at the image's size, or None without masks."""
        p = self.params
        if p["masks"] is not None:
            folder = Path(p["masks"])
            missing = [n for n in names if not (folder / PurePosixPath(n).with_suffix(".png")).is_file()]
            if missing:
                raise DataSetError(f"mask folder {folder} lacks {len(missing)} mask(s) mirroring the images, e.g. "
                                   f"{folder / PurePosixPath(missing[0]).with_suffix('.png')}")
            return lambda name, height, width: folder_mask(folder / PurePosixPath(name).with_suffix(".png"))
        if p["annotations"] is not None:
            return self._coco_reader(Path(p["annotations"]), names)
        return None

    def _coco_reader(self, path: Path, names: list[str]):
        try:
            coco = json.loads(path.read_text())
            files = {str(PurePosixPath(im["file_name"])): im["id"] for im in coco["images"]}
            annotations = coco.get("annotations", [])
        except (OSError, ValueError, KeyError, TypeError) as err:
            raise DataSetError(f"annotation file {path} is not a COCO-style JSON with images[].id/file_name "
                               f"({type(err).__name__}: {err})") from None
        missing = [n for n in names if n not in files]
        if missing:
            raise DataSetError(f"annotation file {path} lists no image {missing[0]!r} (file_name relative to "
                               f"{self.params['root']}), nor {len(missing) - 1} other image(s)")
        by_image: dict[Any, list[dict[str, Any]]] = {}
        for annotation in annotations:
            by_image.setdefault(annotation.get("image_id"), []).append(annotation)

        def read(name: str, height: int, width: int) -> np.ndarray:
            mask = np.zeros((height, width), dtype=bool)
            for annotation in by_image.get(files[name], []):
                mask |= coco_object_mask(height, width, annotation)
            return mask

        return read
