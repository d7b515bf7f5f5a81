"""COCO 2014 val (Lin et al., ECCV 2014): the pointing game's COCO set (Zhang et al.; TorchRay).

``fetch`` downloads ``val2014.zip`` (images ``val2014/COCO_val2014_*.jpg``) and
``annotations_trainval2014.zip`` (``annotations/instances_val2014.json``), both with pinned sha256. Images with
at least one instance are listed by image id (TorchRay's order); one item per category present, with the 80
categories numbered 0..79 in COCO's category-id order. A class's mask is the union of its instances' masks,
crowd regions included (as TorchRay's ``coco_as_mask``): polygons are rasterised by :mod:`.raster` at the
stored size, RLE regions (crowds; uncompressed counts as the instances file has them, or COCO's compressed
string form) are decoded here and resampled. pycocotools is not needed. Difficult items: see
:mod:`.annotated` (the area rule uses the instances' boxes).
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path
from typing import Any, ClassVar, Iterator

import numpy as np

from .annotated import DIFFICULT_AREA, AnnotatedPhotoSource, box_area_fraction, box_mask, decode_image, \
    resample_mask, select_images
from .base import register_dataset
from .download import Remote, fetch_file
from .raster import polygon_mask
from .splits import DataSetError

IMAGES_URL = "http://images.cocodataset.org/zips/val2014.zip"
IMAGES_SHA256 = "fe9be816052049c34717e077d9e34aa60814a55679f804cd043e3cbee3b9fde0"  # 6,645,013,297 bytes
ANNOTATIONS_URL = "http://images.cocodataset.org/annotations/annotations_trainval2014.zip"
ANNOTATIONS_SHA256 = "031296bbc80c45a1d1f76bf9a90ead27e94e99ec629208449507a4917a3bf009"  # 252,872,794 bytes
# (both sha256 as tensorflow-datasets records them: url_checksums/coco2014.txt)
INSTANCES = "annotations/instances_val2014.json"
IMAGE_FOLDER = "val2014"

#: (COCO category id, name) of the 80 object categories, in category-id order (ids 12, 26, 29, 30, 45, 66,
#: 68, 69, 71 and 83 are unused)
CATEGORIES: tuple[tuple[int, str], ...] = (
    (1, "person"), (2, "bicycle"), (3, "car"), (4, "motorcycle"), (5, "airplane"), (6, "bus"), (7, "train"),
    (8, "truck"), (9, "boat"), (10, "traffic light"), (11, "fire hydrant"), (13, "stop sign"),
    (14, "parking meter"), (15, "bench"), (16, "bird"), (17, "cat"), (18, "dog"), (19, "horse"), (20, "sheep"),
    (21, "cow"), (22, "elephant"), (23, "bear"), (24, "zebra"), (25, "giraffe"), (27, "backpack"),
    (28, "umbrella"), (31, "handbag"), (32, "tie"), (33, "suitcase"), (34, "frisbee"), (35, "skis"),
    (36, "snowboard"), (37, "sports ball"), (38, "kite"), (39, "baseball bat"), (40, "baseball glove"),
    (41, "skateboard"), (42, "surfboard"), (43, "tennis racket"), (44, "bottle"), (46, "wine glass"),
    (47, "cup"), (48, "fork"), (49, "knife"), (50, "spoon"), (51, "bowl"), (52, "banana"), (53, "apple"),
    (54, "sandwich"), (55, "orange"), (56, "broccoli"), (57, "carrot"), (58, "hot dog"), (59, "pizza"),
    (60, "donut"), (61, "cake"), (62, "chair"), (63, "couch"), (64, "potted plant"), (65, "bed"),
    (67, "dining table"), (70, "toilet"), (72, "tv"), (73, "laptop"), (74, "mouse"), (75, "remote"),
    (76, "keyboard"), (77, "cell phone"), (78, "microwave"), (79, "oven"), (80, "toaster"), (81, "sink"),
    (82, "refrigerator"), (84, "book"), (85, "clock"), (86, "vase"), (87, "scissors"), (88, "teddy bear"),
    (89, "hair drier"), (90, "toothbrush"),
)
TARGET_OF: dict[int, int] = {cat_id: target for target, (cat_id, _) in enumerate(CATEGORIES)}


def rle_counts(counts: str | list[int]) -> list[int]:
    """Run lengths of a COCO RLE: a list as is, or decoded from COCO's compressed string (6 bits a character:
    5 payload bits, a continuation bit; runs after the second are stored as the difference to two before)."""
    if not isinstance(counts, str):
        return [int(c) for c in counts]
    runs: list[int] = []
    pos = 0
    while pos < len(counts):
        value, shift, more = 0, 0, True
        while more:
            if pos >= len(counts):
                raise DataSetError(f"truncated compressed RLE counts {counts[:40]!r}")
            char = ord(counts[pos]) - 48
            value |= (char & 0x1F) << shift
            more = bool(char & 0x20)
            pos += 1
            shift += 5
            if not more and char & 0x10:
                value -= 1 << shift  # sign-extend the last group
        if len(runs) > 2:
            value += runs[-2]
        runs.append(value)
    return runs


def rle_mask(segmentation: dict[str, Any]) -> np.ndarray:
    """Full-resolution bool ``[height, width]`` mask of an RLE region: alternating runs of 0s and 1s, starting
    with 0s, over the pixels in column-major order."""
    height, width = (int(v) for v in segmentation["size"])
    runs = rle_counts(segmentation["counts"])
    if any(r < 0 for r in runs) or sum(runs) != height * width:
        raise DataSetError(f"RLE runs sum to {sum(runs)} (or are negative), not {height} x {width} pixels")
    flat = np.repeat(np.arange(len(runs)) % 2 == 1, runs)
    return flat.reshape((height, width), order="F")


def instance_mask(ann: dict[str, Any], size: int, height: int, width: int) -> np.ndarray:
    """One instance's mask at ``size`` x ``size`` (polygons rasterised directly; RLE decoded and resampled)."""
    seg = ann.get("segmentation")
    if isinstance(seg, dict):
        return resample_mask(rle_mask(seg), size)
    mask = np.zeros((size, size), dtype=bool)
    scale = np.array([size / width, size / height])
    for polygon in seg or []:
        vertices = np.asarray(polygon, dtype=np.float64).reshape(-1, 2) * scale
        if len(vertices) >= 3:
            mask |= polygon_mask(size, vertices)
    return mask


def xywh_box(ann: dict[str, Any]) -> tuple[float, float, float, float]:
    x, y, w, h = (float(v) for v in ann["bbox"])
    return x, y, x + w, y + h


@register_dataset("coco2014")
class COCO2014(AnnotatedPhotoSource):
    """COCO 2014 val: 40,504 images, 80 categories, instance masks from polygons/RLE (Lin et al. 2014)."""

    citation: ClassVar[str] = ("Lin, Maire, Belongie, Hays, Perona, Ramanan, Dollar, Zitnick. Microsoft COCO: "
                               "Common Objects in Context. ECCV 2014.")
    classes: ClassVar[tuple[str, ...]] = tuple(name for _, name in CATEGORIES)
    #: the official archives (change url and sha256 together for a mirror); n_eval images (None = all 40,137
    #: annotated ones: about 117k items, 18 GB in memory at 224 px)
    defaults: ClassVar[dict[str, Any]] = {
        "images_url": IMAGES_URL, "images_sha256": IMAGES_SHA256,
        "annotations_url": ANNOTATIONS_URL, "annotations_sha256": ANNOTATIONS_SHA256,
        **AnnotatedPhotoSource.common_defaults,
    }

    def remotes(self) -> tuple[Remote, Remote]:
        p = self.params
        return (Remote(p["images_url"], p["images_sha256"], f"{p['images_sha256'][:16]}-val2014.zip"),
                Remote(p["annotations_url"], p["annotations_sha256"],
                       f"{p['annotations_sha256'][:16]}-annotations_trainval2014.zip"))

    def provenance(self) -> dict[str, Any]:
        return {"images_sha256": self.params["images_sha256"],
                "annotations_sha256": self.params["annotations_sha256"], **super().provenance()}

    def image_items(self, root: Path) -> Iterator[tuple[str, np.ndarray, list[tuple[int, np.ndarray, bool]]]]:
        images_zip, annotations_zip = (fetch_file(remote) for remote in self.remotes())
        instances = _read_instances(annotations_zip)
        by_image: dict[int, list[dict[str, Any]]] = {}
        for ann in instances["annotations"]:
            by_image.setdefault(int(ann["image_id"]), []).append(ann)
        info = {int(image["id"]): image for image in instances["images"]}
        stems = {Path(info[i]["file_name"]).stem: i for i in sorted(by_image)}
        self._selected = select_images(list(stems), self.params["n_eval"], self.params["seed"])
        size = self.params["image_size"]
        with zipfile.ZipFile(images_zip) as archive:
            names = set(archive.namelist())
            for stem in self._selected:
                image_id = stems[stem]
                member = f"{IMAGE_FOLDER}/{info[image_id]['file_name']}"
                if member not in names:
                    raise DataSetError(f"{images_zip} has no member {member}: not COCO's val2014.zip")
                image, (height, width) = decode_image(archive.read(member), member, size)
                anns = by_image[image_id]
                present = sorted({TARGET_OF[int(a["category_id"])] for a in anns})
                items = []
                for target in present:
                    mine = [a for a in anns if TARGET_OF[int(a["category_id"])] == target]
                    boxes = [xywh_box(a) for a in mine]
                    mask = np.zeros((size, size), dtype=bool)
                    for ann in mine:
                        mask |= instance_mask(ann, size, height, width)
                    if not mask.any():  # degenerate polygons: fall back to the boxes
                        mask = box_mask(size, boxes, height, width)
                    small = box_area_fraction(boxes, height, width) < DIFFICULT_AREA
                    items.append((target, mask, small and len(present) > 1))
                yield stem, image, items


def _read_instances(path: Path) -> dict[str, Any]:
    """The val2014 instances file of the annotations archive, with its categories checked."""
    with zipfile.ZipFile(path) as archive:
        try:
            instances = json.loads(archive.read(INSTANCES))
        except KeyError:
            raise DataSetError(f"{path} has no member {INSTANCES}: not COCO's annotations_trainval2014.zip") from None
    found = tuple((int(c["id"]), c["name"]) for c in sorted(instances.get("categories", []), key=lambda c: c["id"]))
    if found != CATEGORIES:
        raise DataSetError(f"{path}: {INSTANCES} lists other categories than COCO's 80 object categories")
    unknown = {int(a["category_id"]) for a in instances["annotations"]} - set(TARGET_OF)
    if unknown:
        raise DataSetError(f"{path}: annotations with unknown category ids {sorted(unknown)[:5]}")
    return instances
