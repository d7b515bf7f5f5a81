"""CUB-200-2011: the official archive and segmentation layouts, served locally, read into splits with masks."""

from __future__ import annotations

import numpy as np
import pytest

from salbench.data import create_dataset
from salbench.data.cub200 import segmentation_name
from salbench.data.download import ChecksumError
from salbench.data.prepare import prepare_eval_store
from salbench.params import ParamError
from salbench.store import open_store

from .archive_helpers import encode, serve, solid, tar_bytes

SIZE = 16
#: id: (path, class id, is_training, (height, width), colour)
IMAGES = {
    1: ("001.Alpha/Alpha_0001_1.jpg", 1, 1, (16, 16), (200, 30, 30)),
    2: ("001.Alpha/Alpha_0002_2.jpg", 1, 0, (16, 16), (30, 200, 30)),
    3: ("002.Beta/Beta_0001_3.jpg", 2, 1, (20, 12), (30, 30, 200)),
    4: ("002.Beta/Beta_0002_4.jpg", 2, 0, (16, 16), (220, 220, 40)),
    5: ("003.Gamma/Gamma_0001_5.jpg", 3, 0, (16, 32), (40, 220, 220)),
}
CLASSES = {1: "001.Alpha", 2: "002.Beta", 3: "003.Gamma"}


def segmentations() -> dict[int, np.ndarray]:
    """Grey segmentations of the test images (fifths of 255: the annotators' agreement)."""
    two = np.zeros((16, 16), np.uint8)
    two[:, :8] = 255
    four = np.zeros((16, 16), np.uint8)
    four[:8] = 153  # 3 of 5: foreground
    four[8:] = 102  # 2 of 5: background
    five = np.zeros((16, 32), np.uint8)
    five[4:12, :14] = 255  # 32 px wide, stretched to 16: columns 0..6 stay above 0.5, 7 drops to 0.125
    return {2: two, 4: four, 5: five}


def expected_masks() -> list[np.ndarray]:
    two = np.zeros((SIZE, SIZE), bool)
    two[:, :8] = True
    four = np.zeros((SIZE, SIZE), bool)
    four[:8] = True
    five = np.zeros((SIZE, SIZE), bool)
    five[4:12, :7] = True
    return [two, four, five]


def cub_archives() -> tuple[bytes, bytes]:
    table = lambda rows: "\n".join(f"{k} {v}" for k, v in rows).encode() + b"\n"  # noqa: E731
    members = {
        "CUB_200_2011/README": b"CUB-200-2011",
        "CUB_200_2011/classes.txt": table(CLASSES.items()),
        "CUB_200_2011/images.txt": table((i, v[0]) for i, v in IMAGES.items()),
        "CUB_200_2011/image_class_labels.txt": table((i, v[1]) for i, v in IMAGES.items()),
        "CUB_200_2011/train_test_split.txt": table((i, v[2]) for i, v in IMAGES.items()),
        "CUB_200_2011/bounding_boxes.txt": table((i, "1.0 1.0 8.0 8.0") for i in IMAGES),
    }
    for i, (path, _, _, (h, w), colour) in reversed(IMAGES.items()):  # archive order need not be id order
        members[f"CUB_200_2011/images/{path}"] = encode(solid(h, w, colour), "JPEG")
    segs = {segmentation_name(IMAGES[i][0]): encode(grey, "PNG") for i, grey in segmentations().items()}
    segs[segmentation_name(IMAGES[1][0])] = encode(np.zeros((16, 16), np.uint8), "PNG")
    return tar_bytes(members), tar_bytes(segs)


@pytest.fixture
def served_cub(http_server, tmp_path, monkeypatch):
    images, segs = cub_archives()
    url, sha = serve(http_server, "CUB_200_2011.tgz", images)
    seg_url, seg_sha = serve(http_server, "segmentations.tgz", segs)
    monkeypatch.setenv("SALBENCH_DOWNLOADS", str(tmp_path / "downloads"))
    return {"url": url, "sha256": sha, "segmentations_url": seg_url, "segmentations_sha256": seg_sha,
            "image_size": SIZE, "n_val": 1}


def test_fetch_reads_the_official_layout_with_test_masks(served_cub, tmp_path):
    source = create_dataset("cub200", **served_cub)
    source.fetch(tmp_path / "cub")
    loader = create_dataset("cub200", **served_cub)  # a fresh instance, as the prepare job has
    test = loader.load(tmp_path / "cub", "eval")
    assert loader.classes == ("001.Alpha", "002.Beta", "003.Gamma")
    assert test.item_ids == ["cub-00002", "cub-00004", "cub-00005"]
    np.testing.assert_array_equal(test.targets, [0, 1, 2])
    for got, want in zip(test.masks, expected_masks()):
        np.testing.assert_array_equal(got, want)
    assert test.images.shape == (3, SIZE, SIZE, 3)
    for got, i in zip(test.images, (2, 4, 5)):  # solid colours survive JPEG and resizing
        assert np.abs(got.astype(int) - np.asarray(IMAGES[i][4])).max() <= 3
    train, val = loader.load(tmp_path / "cub", "train"), loader.load(tmp_path / "cub", "val")
    assert sorted(train.item_ids + val.item_ids) == ["cub-00001", "cub-00003"] and len(val) == 1
    assert train.masks is None and train.images.shape[1:] == (SIZE, SIZE, 3)
    store = open_store(prepare_eval_store("cub", loader, tmp_path / "cub", tmp_path / "data.zarr"))
    assert store.attrs["has_masks"] and store.attrs["classes"] == list(loader.classes)
    np.testing.assert_array_equal(store["mask"].values[2], expected_masks()[2])


def test_a_wrong_hash_names_the_file_and_both_hashes_and_leaves_nothing(served_cub, tmp_path):
    wrong = "0" * 64
    source = create_dataset("cub200", **{**served_cub, "segmentations_sha256": wrong})
    with pytest.raises(ChecksumError) as raised:
        source.fetch(tmp_path / "cub")
    message = str(raised.value)
    assert "segmentations.tgz" in message and wrong in message and served_cub["segmentations_sha256"] in message
    downloads = tmp_path / "downloads"
    assert not [p.name for p in downloads.iterdir() if p.name.startswith(wrong[:16]) and not p.suffix == ".lock"]
    assert not (tmp_path / "cub" / "manifest.json").exists()


def test_a_missing_segmentation_is_named(http_server, served_cub, tmp_path):
    images, _ = cub_archives()
    segs = tar_bytes({segmentation_name(IMAGES[2][0]): encode(segmentations()[2], "PNG")})
    url, sha = serve(http_server, "segs-partial.tgz", segs)
    source = create_dataset("cub200", **{**served_cub, "segmentations_url": url, "segmentations_sha256": sha})
    with pytest.raises(Exception, match=r"lacks 2 file\(s\) of CUB-200-2011's segmentations: .*Beta_0002_4.png"):
        source.fetch(tmp_path / "cub")


def test_params_are_checked():
    with pytest.raises(ParamError, match="mask_threshold"):
        create_dataset("cub200", mask_threshold=1.5)
    with pytest.raises(ParamError, match="resize"):
        create_dataset("cub200", resize="pad")
    with pytest.raises(ParamError, match="n_eval"):
        create_dataset("cub200", n_eval=-1)


def test_an_eval_only_subset_is_drawn_by_the_seed(served_cub, tmp_path):
    params = {**served_cub, "n_train": 0, "n_val": 0, "n_eval": 2, "seed": 3}
    ids = []
    for out in ("a", "b"):
        source = create_dataset("cub200", **params)
        source.fetch(tmp_path / out)
        test = source.load(tmp_path / out, "eval")
        assert len(source.load(tmp_path / out, "train")) == 0 and len(source.load(tmp_path / out, "val")) == 0
        ids.append(test.item_ids)
    assert ids[0] == ids[1] and len(ids[0]) == 2 and set(ids[0]) <= {"cub-00002", "cub-00004", "cub-00005"}
