"""Your own data: a folder per class, masks from a PNG folder or a COCO-style JSON, all made by the test."""

from __future__ import annotations

import json

import numpy as np
import pytest

from salbench.data import create_dataset
from salbench.data.prepare import prepare_eval_store
from salbench.data.splits import DataSetError
from salbench.params import ParamError
from salbench.store import open_store

from .archive_helpers import encode, rle_encode_string, solid

SIZE = 8


def make_folder(root) -> dict[str, np.ndarray]:
    """Three classes (one folder holds no image and is not a class); PNG images, lossless."""
    images = {
        "zebra/z1.png": solid(8, 8, (10, 10, 10)),
        "apple/a1.png": solid(8, 16, (200, 0, 0)),  # 16 wide: stretched to 8
        "apple/a2.PNG": solid(8, 8, (0, 200, 0)),
        "mango/m1.png": solid(8, 8, (0, 0, 200)),
    }
    for name, array in images.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(encode(array, "PNG"))
    (root / "notes").mkdir()
    (root / "notes" / "readme.txt").write_text("not an image")
    return images


def test_classes_are_the_sorted_folders_and_every_image_is_an_eval_item(tmp_path):
    images = make_folder(tmp_path / "data")
    source = create_dataset("image_folder", root=str(tmp_path / "data"), image_size=SIZE)
    assert source.classes == ("apple", "mango", "zebra")  # known before fetch (a training job counts them)
    source.fetch(tmp_path / "out")
    items = create_dataset("image_folder", root=str(tmp_path / "data"), image_size=SIZE).load(tmp_path / "out", "eval")
    assert items.item_ids == ["apple/a1", "apple/a2", "mango/m1", "zebra/z1"]
    np.testing.assert_array_equal(items.targets, [0, 0, 1, 2])
    np.testing.assert_array_equal(items.images[0], solid(8, 8, (200, 0, 0)))
    np.testing.assert_array_equal(items.images[3], images["zebra/z1.png"])
    assert items.masks is None and len(source.load(tmp_path / "out", "train")) == 0
    store = open_store(prepare_eval_store("mine", source, tmp_path / "out", tmp_path / "data.zarr"))
    assert not store.attrs["has_masks"] and store.attrs["classes"] == ["apple", "mango", "zebra"]


def test_a_mask_folder_mirrors_the_image_paths(tmp_path):
    make_folder(tmp_path / "data")
    masks = tmp_path / "masks"
    wide = np.zeros((8, 16), np.uint8)
    wide[:, :8] = 3  # any nonzero value is object: the left half, columns 0..3 at 8 px
    palette_like = np.zeros((8, 8, 3), np.uint8)
    palette_like[2:4, 5:7] = (0, 0, 128)
    for name, array in {"apple/a1.png": wide, "apple/a2.png": np.zeros((8, 8), np.uint8),
                        "mango/m1.png": palette_like, "zebra/z1.png": np.full((8, 8), 255, np.uint8)}.items():
        (masks / name).parent.mkdir(parents=True, exist_ok=True)
        (masks / name).write_bytes(encode(array, "PNG"))
    source = create_dataset("image_folder", root=str(tmp_path / "data"), masks=str(masks), image_size=SIZE)
    source.fetch(tmp_path / "out")
    got = source.load(tmp_path / "out", "eval").masks
    expected = np.zeros((4, 8, 8), bool)
    expected[0, :, :4] = True
    expected[2, 2:4, 5:7] = True
    expected[3] = True
    np.testing.assert_array_equal(got, expected)
    (masks / "zebra" / "z1.png").unlink()
    with pytest.raises(DataSetError, match=r"lacks 1 mask\(s\).*zebra/z1.png"):
        source.fetch(tmp_path / "out2")


def test_coco_annotations_give_the_union_of_an_images_objects(tmp_path):
    make_folder(tmp_path / "data")
    rle_mask = np.zeros((8, 8), bool)
    rle_mask[5:8, 0:2] = True
    coco = {
        "images": [{"id": 1, "file_name": "apple/a1.png", "width": 16, "height": 8},
                   {"id": 2, "file_name": "apple/a2.PNG", "width": 8, "height": 8},
                   {"id": 3, "file_name": "mango/m1.png", "width": 8, "height": 8},
                   {"id": 4, "file_name": "zebra/z1.png", "width": 8, "height": 8}],
        "annotations": [
            {"id": 10, "image_id": 1, "category_id": 1, "segmentation": [[0, 0, 8, 0, 8, 8, 0, 8]]},  # left half
            {"id": 11, "image_id": 3, "category_id": 2, "bbox": [1, 1, 2, 3]},
            {"id": 12, "image_id": 3, "category_id": 2,
             "segmentation": {"size": [8, 8], "counts": rle_encode_string(rle_mask)}},
        ],
        "categories": [{"id": 1, "name": "apple"}, {"id": 2, "name": "mango"}],
    }
    (tmp_path / "coco.json").write_text(json.dumps(coco))
    source = create_dataset("image_folder", root=str(tmp_path / "data"), annotations=str(tmp_path / "coco.json"),
                            image_size=SIZE)
    source.fetch(tmp_path / "out")
    got = source.load(tmp_path / "out", "eval").masks
    expected = np.zeros((4, 8, 8), bool)
    expected[0, :, :4] = True
    expected[2, 1:4, 1:3] = True
    expected[2] |= rle_mask
    np.testing.assert_array_equal(got, expected)  # a2 and z1 have no annotation: empty masks
    coco["images"].pop()
    (tmp_path / "coco.json").write_text(json.dumps(coco))
    with pytest.raises(DataSetError, match="lists no image 'zebra/z1.png'"):
        source.fetch(tmp_path / "out2")


def test_n_eval_draws_a_seeded_subset(tmp_path):
    make_folder(tmp_path / "data")
    ids = []
    for out in ("a", "b"):
        source = create_dataset("image_folder", root=str(tmp_path / "data"), image_size=SIZE, n_eval=2, seed=5)
        source.fetch(tmp_path / out)
        ids.append(source.load(tmp_path / out, "eval").item_ids)
    assert ids[0] == ids[1] and len(ids[0]) == 2


def test_missing_folders_and_bad_params_are_named(tmp_path):
    with pytest.raises(ParamError, match="root must be the folder"):
        create_dataset("image_folder")
    with pytest.raises(ParamError, match="not both"):
        create_dataset("image_folder", root="x", masks="m", annotations="a.json")
    with pytest.raises(DataSetError, match="does not exist; put your images there as <class name>/<image file>"):
        create_dataset("image_folder", root=str(tmp_path / "nowhere")).fetch(tmp_path / "out")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataSetError, match="no sub-folder holding images"):
        create_dataset("image_folder", root=str(tmp_path / "empty")).fetch(tmp_path / "out")
