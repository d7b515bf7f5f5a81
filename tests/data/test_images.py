"""Shared image-data helpers: fitting to a square, box and COCO masks, archive/folder members, subsets."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from salbench.data.images import Fit, box_mask, coco_object_mask, polygon_fill, read_members, seeded_subset
from salbench.data.splits import DataSetError

from .archive_helpers import rle_encode_string, tar_bytes


def test_stretch_and_center_crop_map_images_and_masks_alike():
    image = np.zeros((8, 16, 3), np.uint8)  # 16 wide, 8 high; right half bright
    image[:, 8:] = 200
    mask = np.zeros((8, 16), bool)
    mask[:, 12:] = True
    stretch = Fit.of(16, 8, 4, "stretch")  # x / 4, y / 2
    fitted = stretch.image(Image.fromarray(image))
    assert fitted.shape == (4, 4, 3)
    assert (fitted[:, 0] == 0).all() and (fitted[:, 3] == 200).all()  # bilinear: exact away from the edge
    assert (np.diff(fitted[0, :, 0].astype(int)) >= 0).all()
    np.testing.assert_array_equal(stretch.mask(mask), np.tile([False, False, False, True], (4, 1)))
    crop = Fit.of(16, 8, 8, "center_crop")  # columns 4..11 at scale 1
    assert crop.box == (4.0, 0.0, 12.0, 8.0)
    np.testing.assert_array_equal(crop.image(Image.fromarray(image)), image[:, 4:12])
    np.testing.assert_array_equal(crop.mask(mask), np.zeros((8, 8), bool))
    with pytest.raises(DataSetError, match="does not match"):
        stretch.mask(np.zeros((3, 16), bool))


def test_soft_masks_are_thresholded_after_resizing():
    grey = np.zeros((6, 6), np.float32)
    grey[:, :3] = 0.6  # 3 of 5 annotators on the left half, 2 of 5 on the right half
    grey[:, 3:] = 0.4
    np.testing.assert_array_equal(Fit.of(6, 6, 6, "stretch").soft_mask(grey, 0.5), grey > 0.5)
    half = Fit.of(6, 6, 3, "stretch").soft_mask(grey, 0.5)  # the left column stays, the right goes
    assert half[:, 0].all() and not half[:, 2].any()


def test_box_masks_are_pixel_inclusive_and_one_based():
    mask = box_mask(4, 5, [(2, 1, 3, 2)])  # VOC/ImageNet: columns 2..3, rows 1..2, numbered from 1
    expected = np.zeros((4, 5), bool)
    expected[0:2, 1:3] = True
    np.testing.assert_array_equal(mask, expected)
    np.testing.assert_array_equal(box_mask(4, 5, [(1, 0, 2, 1)], one_based=False), expected)
    assert box_mask(4, 5, [(9, 9, 12, 12)]).sum() == 0  # outside the image


def test_polygons_fill_pixel_centres():
    square = polygon_fill(4, 4, [[1, 1, 3, 1, 3, 3, 1, 3]])  # covers the centres of pixels 1..2
    expected = np.zeros((4, 4), bool)
    expected[1:3, 1:3] = True
    np.testing.assert_array_equal(square, expected)
    triangle = polygon_fill(3, 3, [[0, 0, 4, 0, 0, 4]])  # x + y < 4 at the centres (on the edge: out)
    np.testing.assert_array_equal(triangle, [[1, 1, 1], [1, 1, 0], [1, 0, 0]])
    bbox = coco_object_mask(4, 4, {"bbox": [1, 1, 2, 2]})
    np.testing.assert_array_equal(bbox, expected)


def test_rle_decodes_both_coco_forms():
    rng = np.random.default_rng(0)
    mask = rng.random((7, 5)) < 0.4
    mask[:, 0] = False  # a long first run makes the difference coding matter
    flat = mask.T.reshape(-1)
    counts = [len(run) for run in np.split(flat, np.flatnonzero(np.diff(flat)) + 1)]
    counts = counts if not flat[0] else [0, *counts]
    for form in (rle_encode_string(mask), counts):
        np.testing.assert_array_equal(coco_object_mask(7, 5, {"segmentation": {"size": [7, 5], "counts": form}}), mask)
    with pytest.raises(DataSetError, match="RLE of size"):
        coco_object_mask(5, 7, {"segmentation": {"size": [7, 5], "counts": counts}})


def test_members_come_from_archives_and_folders(tmp_path):
    files = {"a/x.txt": b"one", "b.txt": b"two"}
    (tmp_path / "a.tgz").write_bytes(tar_bytes({f"./{name}": data for name, data in files.items()}))
    for name, data in files.items():
        (tmp_path / "dir" / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "dir" / name).write_bytes(data)
    for container in (tmp_path / "a.tgz", tmp_path / "dir"):
        assert read_members(container, ["a/x.txt", "b.txt"]) == files
        with pytest.raises(DataSetError, match=r"lacks 1 file\(s\) of the test: c.txt"):
            read_members(container, ["b.txt", "c.txt"], "of the test")


def test_seeded_subsets_are_reproducible_and_sorted():
    a, b = seeded_subset(100, 10, 3), seeded_subset(100, 10, 3)
    np.testing.assert_array_equal(a, b)
    assert len(set(a.tolist())) == 10 and (np.diff(a) > 0).all()
    assert not np.array_equal(a, seeded_subset(100, 10, 4))
    np.testing.assert_array_equal(seeded_subset(5, None, 0), np.arange(5))
    np.testing.assert_array_equal(seeded_subset(5, 9, 0), np.arange(5))
