"""Shared readers for real image data sets: archive/folder members, fixed-size items, masks from annotations.

Real data sets hold images of varying size; the data store needs ``size`` x ``size`` items. :class:`Fit`
maps an image onto the square (``stretch``: the whole image, aspect ratio not kept, every object stays
in; ``center_crop``: the largest centred square, the usual ImageNet evaluation view) and applies the same
map to its masks, so a mask always lies on its image's pixels. Box masks are rasterised at the source
resolution (pixel-inclusive boxes) and resized like any mask (nearest neighbour).

:func:`read_members` reads named files from a ``.tar``/``.tar.gz`` or an extracted folder in one pass;
:func:`seeded_subset` picks a reproducible subset; :func:`coco_object_mask` rasterises COCO polygons and
run-length encodings with our own code (:mod:`.raster`, :mod:`.coco2014`; pycocotools is not a dependency).
"""

from __future__ import annotations

import io
import json
import tarfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, Iterable, Iterator, Sequence

import numpy as np

from ..params import ParamError, check_choice
from .annotated import select_images
from .base import MANIFEST, Items
from .coco2014 import rle_mask
from .raster import polygon_mask
from .splits import DataSetError, NpzSplitSource

RESIZE_MODES: tuple[str, ...] = ("stretch", "center_crop")
IMAGE_SUFFIXES: tuple[str, ...] = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp")


class ImageSplitSource(NpzSplitSource):
    """A split source of real images whose class names come with the data: ``load`` takes them from the
    manifest ``fetch`` wrote (the class-level ``classes`` then only numbers the classes for the catalog)."""

    def iter_items(self, root: Path, split: str, rows: int | None = None) -> Iterator[Items]:
        chunks = super().iter_items(root, split, rows)
        first = next(chunks)  # the split's file checked against the manifest before its classes are taken
        self.classes = tuple(json.loads((Path(root) / MANIFEST).read_text())["classes"])
        yield first
        yield from chunks


def check_image_params(name: str, params: dict[str, Any]) -> None:
    """Validate the shared ``image_size`` and ``resize`` params of an image data source."""
    size = params["image_size"]
    if isinstance(size, bool) or not isinstance(size, int) or size < 8:
        raise ParamError(f"dataset {name!r}: image_size must be an integer >= 8, got {size!r}")
    check_choice("dataset", name, "resize", params["resize"], RESIZE_MODES)


def check_count(name: str, params: dict[str, Any], key: str) -> None:
    """``params[key]`` must be None (all) or an integer >= 0."""
    value = params[key]
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
        raise ParamError(f"dataset {name!r}: {key} must be null (all) or an integer >= 0, got {value!r}")


@dataclass(frozen=True)
class Fit:
    """The region ``box`` = (left, top, right, bottom) of a ``width`` x ``height`` image resized to ``size``."""

    width: int
    height: int
    size: int
    box: tuple[float, float, float, float]

    @classmethod
    def of(cls, width: int, height: int, size: int, mode: str) -> "Fit":
        if mode == "stretch":
            return cls(width, height, size, (0.0, 0.0, float(width), float(height)))
        side = min(width, height)
        left, top = (width - side) / 2, (height - side) / 2
        return cls(width, height, size, (left, top, left + side, top + side))

    def image(self, image: Any) -> np.ndarray:
        """A PIL image as ``[size, size, 3]`` uint8 RGB (bilinear, antialiased when shrinking)."""
        from PIL import Image

        rgb = image.convert("RGB")
        return np.asarray(rgb.resize((self.size, self.size), Image.BILINEAR, box=self.box), dtype=np.uint8)

    def mask(self, mask: np.ndarray) -> np.ndarray:
        """A source-resolution bool mask ``[height, width]`` as ``[size, size]`` (nearest neighbour)."""
        from PIL import Image

        if mask.shape != (self.height, self.width):
            raise DataSetError(f"mask of shape {mask.shape} does not match its image ({self.height}, {self.width})")
        pil = Image.fromarray(mask.astype(np.uint8) * 255)
        return np.asarray(pil.resize((self.size, self.size), Image.NEAREST, box=self.box)) > 127

    def soft_mask(self, values: np.ndarray, threshold: float) -> np.ndarray:
        """A source-resolution grey mask in [0, 1] resized bilinearly, then ``> threshold``."""
        from PIL import Image

        if values.shape != (self.height, self.width):
            raise DataSetError(f"mask of shape {values.shape} does not match its image ({self.height}, {self.width})")
        pil = Image.fromarray(values.astype(np.float32), mode="F")
        return np.asarray(pil.resize((self.size, self.size), Image.BILINEAR, box=self.box)) > threshold


def open_image(data: bytes, what: str) -> Any:
    """A PIL image from encoded bytes; a :class:`DataSetError` naming ``what`` when it cannot be decoded."""
    from PIL import Image, UnidentifiedImageError

    try:
        image = Image.open(io.BytesIO(data))
        image.load()
    except (UnidentifiedImageError, OSError) as err:
        raise DataSetError(f"{what} is not a readable image ({err})") from None
    return image


def box_mask(height: int, width: int, boxes: Iterable[Sequence[float]], one_based: bool = True) -> np.ndarray:
    """Union of pixel-inclusive boxes (xmin, ymin, xmax, ymax) as a bool ``[height, width]`` mask.

    ``one_based``: PASCAL VOC and ImageNet XML number pixels from 1, so (1, 1, 2, 2) covers the top-left
    2 x 2 pixels; otherwise coordinates are 0-based pixel indices.
    """
    mask = np.zeros((height, width), dtype=bool)
    shift = 1 if one_based else 0
    for xmin, ymin, xmax, ymax in boxes:
        x0, y0 = max(int(round(xmin)) - shift, 0), max(int(round(ymin)) - shift, 0)
        x1, y1 = min(int(round(xmax)) - shift, width - 1), min(int(round(ymax)) - shift, height - 1)
        if x1 >= x0 and y1 >= y0:
            mask[y0:y1 + 1, x0:x1 + 1] = True
    return mask


def _member_name(name: str) -> str:
    return name.removeprefix("./")


def is_archive(path: Path) -> bool:
    return path.is_file() and tarfile.is_tarfile(path)


def list_members(path: Path) -> list[str]:
    """Relative posix names of the regular files in a tar archive or under a folder (sorted)."""
    path = Path(path)
    if path.is_dir():
        return sorted(p.relative_to(path).as_posix() for p in path.rglob("*") if p.is_file())
    with tarfile.open(path) as tar:
        return sorted(_member_name(m.name) for m in tar if m.isfile())


def iter_members(path: Path, wanted: Iterable[str]) -> Iterator[tuple[str, bytes]]:
    """``(name, bytes)`` of the names in ``wanted`` (relative posix paths) that a tar archive (in archive
    order, one sequential pass) or a folder (sorted) holds."""
    path, wanted = Path(path), set(wanted)
    if path.is_dir():
        for name in sorted(wanted):
            file = path / name
            if ".." not in PurePosixPath(name).parts and file.is_file():  # never outside the folder
                yield name, file.read_bytes()
        return
    with tarfile.open(path) as tar:
        for member in tar:
            name = _member_name(member.name)
            if member.isfile() and name in wanted:
                yield name, tar.extractfile(member).read()


def check_found(path: Path, wanted: Iterable[str], found: Iterable[str], what: str = "") -> None:
    """A :class:`DataSetError` naming the container and the first missing names when ``found`` lacks any."""
    missing = sorted(set(wanted) - set(found))
    if missing:
        shown = ", ".join(missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
        raise DataSetError(f"{path} lacks {len(missing)} file(s){' ' + what if what else ''}: {shown}")


def read_members(path: Path, wanted: Iterable[str], what: str = "") -> dict[str, bytes]:
    """The bytes of every name in ``wanted`` from a tar archive or a folder (see :func:`iter_members`);
    a :class:`DataSetError` naming the container and the first missing names otherwise."""
    wanted = set(wanted)
    found = dict(iter_members(path, wanted))
    check_found(path, wanted, found, what)
    return found


def seeded_subset(n_total: int, n: int | None, seed: int) -> np.ndarray:
    """Sorted indices of ``min(n, n_total)`` of ``range(n_total)`` drawn without replacement from ``seed``
    (all of them when ``n`` is None): :func:`.annotated.select_images`' draw, as indices."""
    return np.asarray(select_images(range(n_total), n, seed), dtype=np.int64)


def stack_items(images: list[np.ndarray], size: int) -> np.ndarray:
    """``[N, size, size, 3]`` uint8 (an empty split keeps the item shape)."""
    return np.stack(images) if images else np.zeros((0, size, size, 3), np.uint8)


def stack_masks(masks: list[np.ndarray], size: int) -> np.ndarray:
    return np.stack(masks) if masks else np.zeros((0, size, size), bool)


# --- COCO-style object masks -------------------------------------------------------------------------


def polygon_fill(height: int, width: int, polygons: Iterable[Sequence[float]]) -> np.ndarray:
    """Pixels whose centres lie inside any polygon ``[x1, y1, x2, y2, ...]`` (COCO's pixel coordinates: pixel
    (i, j) spans [j, j+1) x [i, i+1)), even-odd rule per polygon (:func:`.raster.polygon_mask` on the square
    that holds the image)."""
    side = max(height, width)
    mask = np.zeros((height, width), dtype=bool)
    for flat in polygons:
        vertices = np.asarray(flat, dtype=np.float64).reshape(-1, 2)
        if len(vertices) >= 3:
            mask |= polygon_mask(side, vertices)[:height, :width]
    return mask


def coco_object_mask(height: int, width: int, annotation: dict[str, Any]) -> np.ndarray:
    """One COCO annotation's mask: its polygons or RLE, else its ``bbox`` [x, y, w, h] (continuous
    coordinates, pixel centres inside)."""
    segmentation = annotation.get("segmentation")
    if isinstance(segmentation, list) and segmentation:
        return polygon_fill(height, width, segmentation)
    if isinstance(segmentation, dict) and "counts" in segmentation:
        mask = rle_mask({"size": segmentation.get("size", [height, width]), "counts": segmentation["counts"]})
        if mask.shape != (height, width):
            raise DataSetError(f"COCO annotation {annotation.get('id')!r}: RLE of size {list(mask.shape)}, "
                               f"image {height} x {width}")
        return mask
    if "bbox" in annotation:
        x, y, w, h = (float(v) for v in annotation["bbox"])
        return polygon_fill(height, width, [[x, y, x + w, y, x + w, y + h, x, y + h]])
    raise DataSetError(f"COCO annotation {annotation.get('id')!r} has neither a segmentation nor a bbox")
