"""Shared parts of the annotated photo data sets (PASCAL VOC 2007, COCO 2014) of the pointing-game studies.

An *item* is one (image, present class) pair, as in the pointing game of Zhang et al. (ECCV 2016 / IJCV
2018) and TorchRay's benchmark. Images of any size are stretched to ``size`` x ``size`` (every annotated
pixel stays in view; the pointing game's tolerance then counts resized pixels, see
:class:`salbench.metrics.localisation.PointingGame`), and each class's ground truth is rasterised directly at
that size: a pixel belongs to a region when its centre does (the convention of :mod:`.raster`). A region
too small to cover any pixel centre after resizing keeps the one pixel under its centre, so an annotated
class never has an empty mask.

*Difficult* follows the definition of Zhang et al.'s "difficult set": the class's boxes cover less than a
quarter of the image and at least one other class is present. TorchRay evaluates its difficult subset with
per-(image, class) flags that it ships with the package (``pointing_game_ebp_{voc07,coco}_difficult.txt``,
the EBP authors' lists); a user who has that file can pass it as ``difficult_flags`` to use those flags
instead (TorchRay's rule: an image not in the file keeps all its classes in the difficult subset).
"""

from __future__ import annotations

import abc
import io
from pathlib import Path
from typing import Any, ClassVar, Iterable, Iterator, Sequence

import numpy as np

from ..params import ParamError, check_choice
from ..provenance import file_sha256
from .base import Items, rows_per_chunk
from .splits import DataSetError, NpzSplitSource

#: the EBP difficult set: class boxes below this fraction of the image area, and another class present
DIFFICULT_AREA = 0.25
SUBSETS: tuple[str, ...] = ("all", "difficult")


def decode_image(data: bytes, name: str, size: int) -> tuple[np.ndarray, tuple[int, int]]:
    """``(uint8 [size, size, 3] RGB, (height, width) before resizing)`` of an encoded image (Pillow)."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as image:
            rgb = image.convert("RGB")
    except (UnidentifiedImageError, OSError) as err:
        raise DataSetError(f"{name} is not a readable image ({err})") from None
    original = (rgb.height, rgb.width)
    resized = rgb.resize((size, size), Image.Resampling.BILINEAR)
    return np.asarray(resized, dtype=np.uint8), original


def box_mask(size: int, boxes: Iterable[Sequence[float]], height: int, width: int) -> np.ndarray:
    """Union of boxes ``(x0, y0, x1, y1)`` (continuous pixel-edge coordinates of an ``height`` x ``width``
    image) rasterised at ``size`` x ``size``: pixels whose centres lie in a scaled box (edges included)."""
    mask = np.zeros((size, size), dtype=bool)
    centres = np.arange(size, dtype=np.float64) + 0.5
    sx, sy = size / width, size / height
    for x0, y0, x1, y1 in boxes:
        cols = (centres >= x0 * sx) & (centres <= x1 * sx)
        rows = (centres >= y0 * sy) & (centres <= y1 * sy)
        if not cols.any():  # thinner than a resized pixel: keep the column under the box centre
            cols[min(int((x0 + x1) / 2 * sx), size - 1)] = True
        if not rows.any():
            rows[min(int((y0 + y1) / 2 * sy), size - 1)] = True
        mask |= rows[:, None] & cols[None, :]
    return mask


def box_area_fraction(boxes: Iterable[Sequence[float]], height: int, width: int) -> float:
    """Fraction of an ``height`` x ``width`` image covered by the union of boxes, counted in original pixels."""
    covered = np.zeros((height, width), dtype=bool)
    for x0, y0, x1, y1 in boxes:
        covered[max(int(np.floor(y0)), 0):int(np.ceil(y1)), max(int(np.floor(x0)), 0):int(np.ceil(x1))] = True
    return float(covered.mean())


def resample_mask(mask: np.ndarray, size: int) -> np.ndarray:
    """A full-resolution mask at ``size`` x ``size`` by pixel-centre (nearest) sampling; a non-empty mask that
    no sample hits keeps the pixel under its centroid."""
    height, width = mask.shape
    rows = np.minimum(((np.arange(size) + 0.5) * height / size).astype(int), height - 1)
    cols = np.minimum(((np.arange(size) + 0.5) * width / size).astype(int), width - 1)
    out = mask[np.ix_(rows, cols)]
    if mask.any() and not out.any():
        ys, xs = np.nonzero(mask)
        row, col = int((ys.mean() + 0.5) * size / height), int((xs.mean() + 0.5) * size / width)
        out[min(row, size - 1), min(col, size - 1)] = True
    return out


def read_difficult_flags(path: str | Path, n_classes: int) -> dict[str, np.ndarray]:
    """Per-image class flags of a TorchRay difficult list: lines ``<image stem>\\t<0|1> x n_classes``."""
    flags = {}
    for number, line in enumerate(Path(path).read_text().splitlines(), 1):
        if not line.strip():
            continue
        fields = line.split("\t")
        if len(fields) != n_classes + 1 or any(v.strip() not in ("0", "1") for v in fields[1:]):
            raise DataSetError(f"{path}:{number}: expected an image name and {n_classes} tab-separated 0/1 flags")
        flags[fields[0].strip()] = np.array([v.strip() == "1" for v in fields[1:]])
    return flags


def select_images(image_ids: Sequence[str], n_eval: int | None, seed: int) -> list[str]:
    """``n_eval`` image ids drawn without replacement with ``seed`` (all when None), in their listed order."""
    if n_eval is None or n_eval >= len(image_ids):
        return list(image_ids)
    chosen = np.random.default_rng(seed).choice(len(image_ids), size=n_eval, replace=False)
    return [image_ids[i] for i in sorted(chosen)]


class AnnotatedPhotoSource(NpzSplitSource):
    """A downloaded photo data set with per-class ground truth: only an eval split, one item per present class.

    Params shared by the subclasses: ``size`` (side of the stored square images), ``n_eval`` (images drawn
    with ``seed``, None = all; the drawn ids are recorded in the manifest), ``subset`` (``all`` or
    ``difficult``) and ``difficult_flags`` (optional path of a TorchRay difficult list).
    """

    common_defaults: ClassVar[dict[str, Any]] = {"image_size": 224, "n_eval": None, "seed": 0, "subset": "all",
                                                 "difficult_flags": None}

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        p = self.params
        if isinstance(p["image_size"], bool) or not isinstance(p["image_size"], int) or p["image_size"] < 8:
            raise ParamError(f"dataset {self.name!r}: image_size must be an integer >= 8, got {p['image_size']!r}")
        if p["n_eval"] is not None and (isinstance(p["n_eval"], bool) or not isinstance(p["n_eval"], int)
                                        or p["n_eval"] < 1):
            raise ParamError(f"dataset {self.name!r}: n_eval must be null (all images) or an integer >= 1, "
                             f"got {p['n_eval']!r}")
        if isinstance(p["seed"], bool) or not isinstance(p["seed"], int) or p["seed"] < 0:
            raise ParamError(f"dataset {self.name!r}: seed must be an integer >= 0, got {p['seed']!r}")
        check_choice("dataset", self.name, "subset", p["subset"], SUBSETS)
        if p["difficult_flags"] is not None and not Path(p["difficult_flags"]).is_file():
            raise ParamError(f"dataset {self.name!r}: difficult_flags {p['difficult_flags']!r} is not a file "
                             "(TorchRay's pointing_game_ebp_*_difficult.txt, or null for the paper's rule)")
        self._selected: list[str] = []

    @abc.abstractmethod
    def image_items(self, root: Path) -> Iterator[tuple[str, np.ndarray, list[tuple[int, np.ndarray, bool]]]]:
        """``(image id, image [size,size,3], [(target, mask [size,size], difficult by the paper's rule)])``
        for every selected image; subclasses read their archives here and set ``self._selected``."""

    def make_splits(self, root: Path) -> Iterator[tuple[str, Iterator[Items]]]:
        yield "eval", self._eval_chunks(root)

    def _eval_chunks(self, root: Path) -> Iterator[Items]:
        """The eval items in chunks of about :data:`~.base.CHUNK_BYTES` (a whole data set need not fit in memory)."""
        flags = (read_difficult_flags(self.params["difficult_flags"], len(self.classes))
                 if self.params["difficult_flags"] is not None else None)
        size = self.params["image_size"]
        rows, total = rows_per_chunk(4 * size * size), 0
        columns: dict[str, list] = {name: [] for name in ("item_ids", "image_ids", "images", "targets", "masks",
                                                          "difficult")}
        for image_id, image, objects in self.image_items(root):
            for target, mask, hard in objects:
                if flags is not None:  # TorchRay: an image missing from the list keeps every class
                    hard = bool(flags[image_id][target]) if image_id in flags else True
                if self.params["subset"] == "difficult" and not hard:
                    continue
                for name, value in zip(columns, (f"{image_id}-c{target:02d}", image_id, image, target, mask, hard)):
                    columns[name].append(value)
            if len(columns["item_ids"]) >= rows:
                total += len(columns["item_ids"])
                yield _chunk(columns, size)
        if not total + len(columns["item_ids"]):
            raise DataSetError(f"dataset {self.name!r} with {self.params}: no items (no annotated class in the "
                               "selected images, or none in the chosen subset)")
        if columns["item_ids"]:
            yield _chunk(columns, size)

    def provenance(self) -> dict[str, Any]:
        flags = self.params["difficult_flags"]
        return {"selected_images": self._selected,
                **({"difficult_flags_sha256": file_sha256(flags)} if flags is not None else {})}

    def iter_items(self, root: Path, split: str, rows: int | None = None) -> Iterator[Items]:
        if split != "eval":
            raise DataSetError(f"dataset {self.name!r} has only an eval split (its models are pretrained or "
                               f"user-supplied, not trained here); asked for {split!r}")
        yield from super().iter_items(root, split, rows)


def _chunk(columns: dict[str, list], size: int) -> Items:
    """The items gathered in ``columns`` (emptied for the next chunk)."""
    items = Items(item_ids=columns["item_ids"], image_ids=columns["image_ids"],
                  images=np.stack(columns["images"]).reshape(-1, size, size, 3),
                  targets=np.asarray(columns["targets"], dtype=np.int64), masks=np.stack(columns["masks"]),
                  difficult=np.asarray(columns["difficult"], dtype=bool))
    for name in columns:
        columns[name] = []
    return items
