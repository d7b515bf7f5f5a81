"""The synthetic shapes data sets: exact masks, determinism, pairs, balance, fetch/load with manifest."""

import json

import numpy as np
import pytest
from scipy import ndimage

from salbench.data import DataSource, Items, create_dataset, list_datasets
from salbench.data.base import manifest_sha256
from salbench.data.shapes import DataSetError
from salbench.params import ParamError
from salbench.provenance import file_sha256

SMALL = {"n_train": 60, "n_val": 30, "n_eval": 24, "seed": 3}


@pytest.fixture(scope="module")
def shapes() -> Items:
    return create_dataset("shapes", **SMALL).generate("train")


@pytest.fixture(scope="module")
def pairs() -> Items:
    return create_dataset("shapes_pair", **SMALL).generate("eval")


def test_registered_with_class_names():
    assert {"shapes", "shapes_pair"} <= set(list_datasets())
    source = create_dataset("shapes")
    assert isinstance(source, DataSource) and len(source.classes) >= 6
    assert len(set(source.classes)) == len(source.classes)


def test_items_have_the_contract_types(shapes):
    n = SMALL["n_train"]
    assert shapes.images.shape == (n, 64, 64, 3) and shapes.images.dtype == np.uint8
    assert shapes.masks.shape == (n, 64, 64) and shapes.masks.dtype == bool
    assert shapes.targets.dtype == np.int64 and len(shapes.item_ids) == len(set(shapes.item_ids)) == n
    assert shapes.image_ids == shapes.item_ids


def _check_mask_is_the_painted_object(image: np.ndarray, mask: np.ndarray) -> None:
    """Masked pixels share one colour that contrasts with, and barely occurs in, the ring around them."""
    colours = np.unique(image[mask], axis=0)
    assert len(colours) == 1, "an object is painted in exactly one flat colour"
    ring = ndimage.binary_dilation(mask, iterations=2) & ~mask
    same = np.all(image[ring] == colours[0], axis=1)
    assert same.mean() < 0.1, "the object's colour does not continue outside its mask"
    contrast = np.linalg.norm(image[ring].astype(float).mean(0) - colours[0])
    assert contrast > 50, "the object stands out from the background around it"
    labels, count = ndimage.label(mask, structure=np.ones((3, 3)))
    assert np.bincount(labels.ravel())[1:].max() >= 0.95 * mask.sum(), "one connected object"


def test_masks_are_exactly_the_painted_objects(shapes, pairs):
    for image, mask in zip(shapes.images, shapes.masks):
        _check_mask_is_the_painted_object(image, mask)
    for image, mask in zip(pairs.images, pairs.masks):
        _check_mask_is_the_painted_object(image, mask)


def test_mask_areas_are_sensible(shapes):
    area = shapes.masks.mean(axis=(1, 2))
    assert area.min() > 0.005 and area.max() < 0.25


def test_each_class_is_its_own_shape(shapes):
    """Fill fraction of the bounding box separates rings and crosses from circles and squares etc."""
    circle, ring = shapes.targets == 0, shapes.targets == 4
    area = shapes.masks.sum(axis=(1, 2))
    assert area[ring].mean() < area[circle].mean()
    holes = [ndimage.binary_fill_holes(m).sum() > m.sum() for m in shapes.masks]
    assert all(h == (t == 4) for h, t in zip(holes, shapes.targets)), "only rings have holes"


def test_same_seed_same_bytes_other_seed_other_images(shapes):
    again = create_dataset("shapes", **SMALL).generate("train")
    for name in ("images", "masks", "targets"):
        np.testing.assert_array_equal(getattr(again, name), getattr(shapes, name))
    other = create_dataset("shapes", **{**SMALL, "seed": 4}).generate("train")
    assert not np.array_equal(other.images, shapes.images)


def test_splits_differ_and_images_do_not_depend_on_split_size(shapes):
    source = create_dataset("shapes", **SMALL)
    assert not np.array_equal(source.generate("val").images, shapes.images[:SMALL["n_val"]])
    larger = create_dataset("shapes", **{**SMALL, "n_train": 95}).generate("train")
    np.testing.assert_array_equal(larger.images[:len(shapes)], shapes.images)
    np.testing.assert_array_equal(larger.targets[:len(shapes)], shapes.targets)


def test_classes_are_balanced(shapes):
    counts = np.bincount(shapes.targets, minlength=6)
    assert counts.max() - counts.min() <= 1


def test_pairs_give_one_item_per_object_of_different_classes(pairs):
    n = SMALL["n_eval"]
    assert len(pairs) == 2 * n
    assert pairs.image_ids[::2] == pairs.image_ids[1::2] and len(set(pairs.image_ids)) == n
    assert len(set(pairs.item_ids)) == 2 * n
    np.testing.assert_array_equal(pairs.images[::2], pairs.images[1::2])
    assert np.all(pairs.targets[::2] != pairs.targets[1::2])
    for first, second in zip(pairs.masks[::2], pairs.masks[1::2]):
        assert not (ndimage.binary_dilation(first, iterations=2) & second).any(), "objects apart, with a gap"
    counts = np.bincount(create_dataset("shapes_pair", n_eval=300).generate("eval").targets, minlength=6)
    assert counts.min() > 0.7 * counts.mean()


def test_fetch_writes_manifest_and_load_round_trips(tmp_path, shapes):
    source = create_dataset("shapes", **SMALL)
    source.fetch(tmp_path)
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert manifest["params"] == source.params and manifest["classes"] == list(source.classes)
    assert manifest["files"] == {f"{s}.npz": file_sha256(tmp_path / f"{s}.npz") for s in ("train", "val", "eval")}
    assert manifest_sha256(tmp_path) == file_sha256(tmp_path / "manifest.json")
    loaded = source.load(tmp_path, "train")
    np.testing.assert_array_equal(loaded.images, shapes.images)
    np.testing.assert_array_equal(loaded.masks, shapes.masks)
    np.testing.assert_array_equal(loaded.targets, shapes.targets)
    assert loaded.item_ids == shapes.item_ids and loaded.image_ids == shapes.image_ids
    assert not list(tmp_path.glob(".*tmp*")), "no temporary files left behind"


def test_fetch_is_byte_reproducible(tmp_path):
    source = create_dataset("shapes_pair", **SMALL)
    source.fetch(tmp_path / "a")
    source.fetch(tmp_path / "b")
    assert manifest_sha256(tmp_path / "a") == manifest_sha256(tmp_path / "b")


def test_load_refuses_altered_files_and_other_params(tmp_path):
    source = create_dataset("shapes", **SMALL)
    source.fetch(tmp_path)
    with pytest.raises(DataSetError, match="params"):
        create_dataset("shapes", **{**SMALL, "seed": 9}).load(tmp_path, "eval")
    with pytest.raises(DataSetError, match="params"):
        create_dataset("shapes_pair", **SMALL).load(tmp_path, "eval")
    path = tmp_path / "val.npz"
    path.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(DataSetError, match="val.npz"):
        source.load(tmp_path, "val")
    with pytest.raises(DataSetError, match="missing"):
        source.load(tmp_path / "nowhere", "val")


def test_bad_params_are_refused():
    with pytest.raises(ParamError, match="allowed"):
        create_dataset("shapes", colours=3)
    with pytest.raises(ParamError, match="radius"):
        create_dataset("shapes", radius_min=0.3, radius_max=0.2)
