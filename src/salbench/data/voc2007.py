"""PASCAL VOC 2007 test (Everingham et al., IJCV 2010): the pointing game's VOC set (Zhang et al.; TorchRay).

``fetch`` downloads ``VOCtest_06-Nov-2007.tar`` (pinned sha256, resumable, cached: see :mod:`.download`),
reads the image list ``VOCdevkit/VOC2007/ImageSets/Main/test.txt``, and for each (selected) image its
``Annotations/<id>.xml`` and ``JPEGImages/<id>.jpg``. One item per class present in the image, as TorchRay's
benchmark evaluates it: the mask is the union of all of that class's boxes (VOC's 1-based inclusive pixel
boxes), and a class whose boxes are all marked ``difficult`` in the XML is skipped (TorchRay returns "no
result" for it in both subsets). Difficult items: see :mod:`.annotated`.
"""

from __future__ import annotations

import tarfile
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any, ClassVar, Iterator

import numpy as np

from .annotated import DIFFICULT_AREA, AnnotatedPhotoSource, box_area_fraction, box_mask, decode_image, select_images
from .base import register_dataset
from .download import Remote, fetch_file
from .splits import DataSetError

URL = "http://host.robots.ox.ac.uk/pascal/VOC/voc2007/VOCtest_06-Nov-2007.tar"
# 451,020,800 bytes (official md5 b6e924de25625d8de591ea690078ad9f); sha256 as tensorflow-datasets records
# it (url_checksums/voc.txt, for the pjreddie.com mirror of the same archive)
SHA256 = "6836888e2e01dca84577a849d339fa4f73e1e4f135d312430c4856b5609b4892"
BASE = "VOCdevkit/VOC2007"
CLASSES: tuple[str, ...] = ("aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
                            "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa",
                            "train", "tvmonitor")


def parse_annotation(xml: bytes, name: str) -> list[tuple[str, tuple[float, float, float, float], bool]]:
    """``[(class name, (x0, y0, x1, y1) in pixel-edge coordinates, difficult)]`` of a VOC annotation file."""
    try:
        root = ET.fromstring(xml)
        objects = []
        for obj in root.iter("object"):
            box = obj.find("bndbox")
            xmin, ymin, xmax, ymax = (float(box.findtext(k)) for k in ("xmin", "ymin", "xmax", "ymax"))
            # VOC boxes are 1-based and inclusive: pixel columns xmin..xmax are edges xmin-1 .. xmax
            objects.append((obj.findtext("name").strip(), (xmin - 1, ymin - 1, xmax, ymax),
                            obj.findtext("difficult", "0").strip() == "1"))
    except (ET.ParseError, AttributeError, TypeError, ValueError) as err:
        raise DataSetError(f"{name} is not a VOC annotation ({err})") from None
    unknown = sorted({cls for cls, _, _ in objects} - set(CLASSES))
    if unknown:
        raise DataSetError(f"{name}: unknown VOC class {unknown[0]!r}")
    return objects


@register_dataset("voc2007")
class VOC2007(AnnotatedPhotoSource):
    """PASCAL VOC 2007 test: 4952 images, 20 classes, box masks and difficult flags (Everingham et al. 2010)."""

    citation: ClassVar[str] = ("Everingham, Van Gool, Williams, Winn, Zisserman. The PASCAL Visual Object Classes "
                               "(VOC) Challenge. IJCV 88(2), 2010.")
    classes: ClassVar[tuple[str, ...]] = CLASSES
    #: ``url``/``sha256``: the official test archive (change both for a mirror)
    defaults: ClassVar[dict[str, Any]] = {"url": URL, "sha256": SHA256, **AnnotatedPhotoSource.common_defaults}

    def remote(self) -> Remote:
        sha256 = self.params["sha256"]
        return Remote(self.params["url"], sha256, f"{sha256[:16]}-VOCtest_06-Nov-2007.tar")

    def provenance(self) -> dict[str, Any]:
        return {"archive_sha256": self.params["sha256"], **super().provenance()}

    def image_items(self, root: Path) -> Iterator[tuple[str, np.ndarray, list[tuple[int, np.ndarray, bool]]]]:
        archive = fetch_file(self.remote())
        size = self.params["image_size"]
        with tarfile.open(archive, "r") as tar:
            members = {m.name.removeprefix("./"): m for m in tar.getmembers() if m.isfile()}

            def read(member: str) -> bytes:
                if member not in members:
                    raise DataSetError(f"{archive} has no member {member}: not the VOC 2007 test archive")
                return tar.extractfile(members[member]).read()

            listed = [line.strip() for line in read(f"{BASE}/ImageSets/Main/test.txt").decode().splitlines()]
            self._selected = select_images([i for i in listed if i], self.params["n_eval"], self.params["seed"])
            for image_id in self._selected:
                objects = parse_annotation(read(f"{BASE}/Annotations/{image_id}.xml"), f"{image_id}.xml")
                jpeg = read(f"{BASE}/JPEGImages/{image_id}.jpg")
                image, (height, width) = decode_image(jpeg, f"{image_id}.jpg", size)
                present = sorted({CLASSES.index(cls) for cls, _, _ in objects})
                items = []
                for target in present:
                    mine = [(box, hard) for cls, box, hard in objects if CLASSES.index(cls) == target]
                    if all(hard for _, hard in mine):
                        continue  # only PASCAL-difficult boxes: TorchRay skips the class
                    boxes = [box for box, _ in mine]
                    small = box_area_fraction(boxes, height, width) < DIFFICULT_AREA
                    items.append((target, box_mask(size, boxes, height, width), small and len(present) > 1))
                yield image_id, image, items
