"""COCO 2014 val: tiny image and annotation archives in the official layout, served locally, read into items."""

from __future__ import annotations

import hashlib
import io
import json
import zipfile

import numpy as np
import pytest

from salbench.data import create_dataset
from salbench.data.coco2014 import CATEGORIES, INSTANCES, rle_counts, rle_mask
from salbench.data.download import ChecksumError
from salbench.data.splits import DataSetError

from .photos import assert_colour, assert_nothing_left, jpeg

SIZE = 20
#: image id -> (width, height, colour); 74 has no annotation (not listed), 90 only a degenerate polygon
IMAGES = {42: (100, 50, (200, 40, 40)), 73: (80, 80, (30, 160, 60)), 74: (60, 40, (90, 90, 90)),
          90: (60, 40, (50, 60, 210))}


def stem(image_id: int) -> str:
    return f"COCO_val2014_{image_id:012d}"


def crowd_counts() -> list[int]:
    """Column-major runs of a 100 x 50 mask with rows 0..9 of columns 80..89 set."""
    return [80 * 50] + [10, 40] * 9 + [10, 40 + 10 * 50]


ANNOTATIONS = [
    # person (category 1 -> 0): rectangle with edges x 10..60, y 5..30, exactly a quarter of the image
    {"id": 1, "image_id": 42, "category_id": 1, "iscrowd": 0, "bbox": [10, 5, 50, 25],
     "segmentation": [[10, 5, 60, 5, 60, 30, 10, 30]]},
    # tv (category 72 -> 62) as a crowd RLE region: small, beside a person -> difficult
    {"id": 2, "image_id": 42, "category_id": 72, "iscrowd": 1, "bbox": [80, 0, 10, 10],
     "segmentation": {"counts": crowd_counts(), "size": [50, 100]}},
    # cat (17 -> 15): a triangle, and a degenerate two-point polygon that adds nothing
    {"id": 3, "image_id": 73, "category_id": 17, "iscrowd": 0, "bbox": [0, 0, 40, 40],
     "segmentation": [[0, 0, 40, 0, 0, 40]]},
    {"id": 4, "image_id": 73, "category_id": 17, "iscrowd": 0, "bbox": [70, 70, 1, 1],
     "segmentation": [[70, 70, 71, 71]]},
    # bird (16 -> 14): only a degenerate polygon: the mask falls back to its 1 px box
    {"id": 5, "image_id": 90, "category_id": 16, "iscrowd": 0, "bbox": [30, 20, 1, 1],
     "segmentation": [[30, 20, 31, 21]]},
]


def coco_archives(categories=CATEGORIES) -> tuple[bytes, bytes]:
    instances = {
        "info": {"description": "tiny"}, "licenses": [],
        "images": [{"id": i, "file_name": f"{stem(i)}.jpg", "width": w, "height": h}
                   for i, (w, h, _) in IMAGES.items()],
        "annotations": ANNOTATIONS,
        "categories": [{"id": cid, "name": name, "supercategory": "x"} for cid, name in categories],
    }
    images, annotations = io.BytesIO(), io.BytesIO()
    with zipfile.ZipFile(images, "w") as archive:
        for image_id, (width, height, colour) in IMAGES.items():
            archive.writestr(f"val2014/{stem(image_id)}.jpg", jpeg(width, height, colour))
    with zipfile.ZipFile(annotations, "w") as archive:
        archive.writestr(INSTANCES, json.dumps(instances))
        archive.writestr("annotations/captions_val2014.json", "{}")
    return images.getvalue(), annotations.getvalue()


def serve(http_server, tmp_path, monkeypatch, categories=CATEGORIES) -> dict:
    images, annotations = coco_archives(categories)
    http_server.files["/val2014.zip"] = images
    http_server.files["/annotations_trainval2014.zip"] = annotations
    monkeypatch.setenv("SALBENCH_DOWNLOADS", str(tmp_path / "downloads"))
    return {"images_url": http_server.url("val2014.zip"), "images_sha256": hashlib.sha256(images).hexdigest(),
            "annotations_url": http_server.url("annotations_trainval2014.zip"),
            "annotations_sha256": hashlib.sha256(annotations).hexdigest(), "image_size": SIZE}


@pytest.fixture
def served_coco(http_server, tmp_path, monkeypatch):
    return serve(http_server, tmp_path, monkeypatch)


def test_download_verify_prepare_gives_instance_masks_per_present_class(served_coco, tmp_path):
    source = create_dataset("coco2014", **served_coco)
    source.fetch(tmp_path / "coco")
    items = source.load(tmp_path / "coco", "eval")
    assert items.item_ids == [f"{stem(42)}-c00", f"{stem(42)}-c62", f"{stem(73)}-c15", f"{stem(90)}-c14"]
    assert [source.classes[t] for t in items.targets] == ["person", "tv", "cat", "bird"]
    np.testing.assert_array_equal(items.difficult, [False, True, False, False])
    expected = np.zeros((4, SIZE, SIZE), dtype=bool)
    expected[0, 2:12, 2:12] = True  # 100 x 50 -> x * 0.2, y * 0.4: edges 2..12 both ways, centres inside
    expected[1, 0:4, 16:18] = True  # RLE rows 0..9 -> sampled rows 1, 3, 6, 8; columns 80..89 -> 82, 87
    rows, cols = np.indices((SIZE, SIZE))
    expected[2] = rows + cols <= 8  # triangle x + y < 10 at pixel centres (the hypotenuse excluded)
    expected[3, 10, 10] = True  # 1 px box (30..31, 20..21) at scale 1/3, 1/2: the pixel under it
    np.testing.assert_array_equal(items.masks, expected)
    for image, image_id in zip(items.images, items.image_ids):
        assert_colour(image, IMAGES[int(image_id[-12:])][2], SIZE)
    manifest = json.loads((tmp_path / "coco" / "manifest.json").read_text())
    assert manifest["selected_images"] == [stem(42), stem(73), stem(90)]  # 74 has no annotation


def test_seeded_subset_of_annotated_images(served_coco, tmp_path):
    source = create_dataset("coco2014", **served_coco, n_eval=1, seed=5, subset="all")
    source.fetch(tmp_path / "coco")
    picked = json.loads((tmp_path / "coco" / "manifest.json").read_text())["selected_images"]
    assert len(picked) == 1 and picked[0] in {stem(42), stem(73), stem(90)}
    assert set(source.load(tmp_path / "coco", "eval").image_ids) == set(picked)
    hard = create_dataset("coco2014", **served_coco, subset="difficult")
    hard.fetch(tmp_path / "hard")
    assert hard.load(tmp_path / "hard", "eval").item_ids == [f"{stem(42)}-c62"]


def test_compressed_rle_strings_decode_by_hand():
    assert rle_counts("321") == [3, 2, 1]
    assert rle_counts("3213") == [3, 2, 1, 5]  # the fourth run is stored as 5 - 2
    assert rle_counts("321O") == [3, 2, 1, 1]  # ... and 1 - 2 = -1 as the sign-extended group 'O'
    assert rle_counts("T3") == [100]  # 4 + 3 * 32 over two characters
    mask = rle_mask({"counts": "321", "size": [2, 3]})  # column-major: 3 zeros, 2 ones, 1 zero
    np.testing.assert_array_equal(mask, [[False, False, True], [False, True, False]])
    with pytest.raises(DataSetError, match="not 2 x 2"):
        rle_mask({"counts": [1, 2], "size": [2, 2]})


def test_a_wrong_hash_names_file_and_hashes_and_leaves_nothing(served_coco, tmp_path):
    wrong = "f" * 64
    source = create_dataset("coco2014", **{**served_coco, "annotations_sha256": wrong})
    with pytest.raises(ChecksumError) as err:
        source.fetch(tmp_path / "coco")
    message = str(err.value)
    assert "annotations_trainval2014.zip" in message and wrong in message
    assert served_coco["annotations_sha256"] in message
    (tmp_path / "downloads" / f"{served_coco['images_sha256'][:16]}-val2014.zip").unlink()  # the good one
    assert_nothing_left(tmp_path / "downloads", tmp_path / "coco")


def test_other_categories_are_refused(http_server, tmp_path, monkeypatch):
    renamed = tuple((cid, "sofa" if name == "couch" else name) for cid, name in CATEGORIES)
    params = serve(http_server, tmp_path, monkeypatch, categories=renamed)
    with pytest.raises(DataSetError, match="other categories"):
        create_dataset("coco2014", **params).fetch(tmp_path / "coco")


def test_a_region_no_sample_hits_keeps_the_pixel_under_it():
    from salbench.data.annotated import resample_mask

    mask = np.zeros((100, 100), dtype=bool)
    mask[0, 1] = True  # samples at 20 px read rows/columns 2, 7, 12, ...: all miss it
    expected = np.zeros((SIZE, SIZE), dtype=bool)
    expected[0, 0] = True
    np.testing.assert_array_equal(resample_mask(mask, SIZE), expected)
