"""Imagenette: the imagenette2-320 layout served locally, ImageNet class indices, no masks (mask metrics skipped)."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import xarray as xr

from salbench.data import create_dataset
from salbench.data.download import ChecksumError
from salbench.data.imagenette import WNID_TO_IMAGENET
from salbench.data.prepare import prepare_eval_store
from salbench.data.splits import DataSetError
from salbench.jobs import score
from salbench.store import object_strings, open_store, write_store

from .archive_helpers import encode, serve, solid, tar_bytes

SIZE = 16
#: member -> colour; 24 high, 32 wide (center_crop keeps the middle 24 columns)
FILES = {
    "imagenette2-320/train/n01440764/n01440764_1.JPEG": (200, 20, 20),
    "imagenette2-320/train/n03888257/n03888257_2.JPEG": (20, 200, 20),
    "imagenette2-320/val/n01440764/ILSVRC2012_val_00000293.JPEG": (20, 20, 200),
    "imagenette2-320/val/n02102040/ILSVRC2012_val_00000665.JPEG": (220, 220, 30),
    "imagenette2-320/val/n03888257/ILSVRC2012_val_00002138.JPEG": (30, 220, 220),
}


@pytest.fixture
def served_imagenette(http_server, tmp_path, monkeypatch):
    members = {"imagenette2-320/noisy_imagenette.csv": b"path,noisy_labels_0\n"}
    members.update({name: encode(solid(24, 32, colour), "JPEG") for name, colour in FILES.items()})
    url, sha = serve(http_server, "imagenette2-320.tgz", tar_bytes(members))
    monkeypatch.setenv("SALBENCH_DOWNLOADS", str(tmp_path / "downloads"))
    return {"url": url, "sha256": sha, "image_size": SIZE, "n_train": None, "n_val": 1, "n_eval": None}


def test_the_wnids_map_to_imagenets_class_names():
    source = create_dataset("imagenette")
    names = [source.classes[WNID_TO_IMAGENET[w]] for w in sorted(WNID_TO_IMAGENET)]
    assert len(source.classes) == 1000
    assert names == ["tench", "English springer", "cassette player", "chain saw", "church", "French horn",
                     "garbage truck", "gas pump", "golf ball", "parachute"]


def test_fetch_reads_the_layout_with_imagenet_targets_and_no_masks(served_imagenette, tmp_path):
    source = create_dataset("imagenette", **served_imagenette)
    source.fetch(tmp_path / "nette")
    test = source.load(tmp_path / "nette", "eval")
    assert test.item_ids == ["val/n01440764/ILSVRC2012_val_00000293", "val/n02102040/ILSVRC2012_val_00000665",
                             "val/n03888257/ILSVRC2012_val_00002138"]
    np.testing.assert_array_equal(test.targets, [0, 217, 701])
    assert test.masks is None and test.images.shape == (3, SIZE, SIZE, 3)
    for got, name in zip(test.images, sorted(n for n in FILES if "/val/" in n)):
        assert np.abs(got.astype(int) - np.asarray(FILES[name])).max() <= 3
    train, val = source.load(tmp_path / "nette", "train"), source.load(tmp_path / "nette", "val")
    assert len(train) == 1 and len(val) == 1
    assert {train.item_ids[0], val.item_ids[0]} == {"train/n01440764/n01440764_1", "train/n03888257/n03888257_2"}
    store = open_store(prepare_eval_store("nette", source, tmp_path / "nette", tmp_path / "data.zarr"))
    assert not store.attrs["has_masks"]


def test_mask_metrics_are_skipped_with_a_reason(served_imagenette, tmp_path, caplog):
    source = create_dataset("imagenette", **served_imagenette)
    source.fetch(tmp_path / "nette")
    data = prepare_eval_store("nette", source, tmp_path / "nette", tmp_path / "data.zarr")
    items = open_store(data)["item"].values
    maps = xr.Dataset({"saliency": (("item", "y", "x"), np.random.default_rng(0).random((3, SIZE, SIZE), np.float32))},
                      coords={"item": object_strings(list(items))})
    write_store(maps, tmp_path / "maps.zarr")
    metrics = {"pointing_game": {"metric": "pointing_game"}, "sparseness": {"metric": "sparseness"}}
    with caplog.at_level(logging.WARNING, logger="salbench"):
        table = score("nette", "m", "random", metrics, data, tmp_path / "no-model.pt", tmp_path / "maps.zarr", "cpu", 2,
                      tmp_path / "scores.parquet")
    assert set(table["metric"]) == {"sparseness"} and len(table) == 3
    assert "metric pointing_game skipped: data set 'nette' has no ground-truth masks" in caplog.text
    only_masks = score("nette", "m", "random", {"pointing_game": {"metric": "pointing_game"}}, data,
                       tmp_path / "no-model.pt", tmp_path / "maps.zarr", "cpu", 2, tmp_path / "scores2.parquet")
    assert only_masks.empty


def test_a_wrong_hash_is_refused_naming_both_hashes(served_imagenette, tmp_path):
    wrong = "f" * 64
    with pytest.raises(ChecksumError, match=f"imagenette2-320.tgz.*sha256 {served_imagenette['sha256']}, expected {wrong}"):
        create_dataset("imagenette", **{**served_imagenette, "sha256": wrong}).fetch(tmp_path / "nette")
    assert not list((tmp_path / "downloads").glob("*.part")) and not list((tmp_path / "downloads").glob("*.tgz"))


def test_an_archive_without_val_images_is_refused(http_server, tmp_path, monkeypatch):
    url, sha = serve(http_server, "other.tgz", tar_bytes({"other/readme.txt": b"x"}))
    monkeypatch.setenv("SALBENCH_DOWNLOADS", str(tmp_path / "downloads"))
    with pytest.raises(DataSetError, match="not the imagenette2-320 archive"):
        create_dataset("imagenette", url=url, sha256=sha).fetch(tmp_path / "nette")
