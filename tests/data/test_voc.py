"""PASCAL VOC 2007 test: a tiny archive in the official layout, served locally, read into pointing-game items."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile

import numpy as np
import pytest

from salbench.data import create_dataset
from salbench.data.download import ChecksumError
from salbench.data.prepare import open_data, prepare_eval_store
from salbench.data.splits import DataSetError
from salbench.data.voc2007 import BASE
from salbench.params import ParamError

from .photos import assert_colour, assert_nothing_left, jpeg

SIZE = 20
COLOURS = {"000001": (200, 40, 40), "000002": (30, 160, 60), "000003": (50, 60, 210)}


def annotation(image_id: str, width: int, height: int, objects: list[tuple[str, tuple[int, ...], int]]) -> bytes:
    """A VOC annotation file: size, and per object its name, difficult flag and 1-based inclusive box."""
    body = "".join(
        f"<object><name>{name}</name><pose>Unspecified</pose><truncated>0</truncated>"
        f"<difficult>{hard}</difficult><bndbox><xmin>{x0}</xmin><ymin>{y0}</ymin><xmax>{x1}</xmax>"
        f"<ymax>{y1}</ymax></bndbox></object>" for name, (x0, y0, x1, y1), hard in objects)
    return (f"<annotation><folder>VOC2007</folder><filename>{image_id}.jpg</filename><size><width>{width}</width>"
            f"<height>{height}</height><depth>3</depth></size><segmented>0</segmented>{body}</annotation>").encode()


#: image id -> (width, height, objects)
IMAGES = {
    # dog box covers exactly a quarter of the image (not "small"); person small with a distractor: difficult;
    # bottle only PASCAL-difficult: no item
    "000001": (100, 50, [("dog", (11, 6, 60, 30), 0), ("person", (81, 1, 90, 10), 0), ("bottle", (1, 1, 5, 5), 1)]),
    # one class, two boxes (a big one and a 2 px one): union; single class, never difficult
    "000002": (80, 80, [("cat", (1, 1, 40, 40), 0), ("cat", (61, 61, 62, 62), 0)]),
    # a 1 px bird (thinner than a stored pixel: keeps the pixel under it) beside a full-image horse
    "000003": (60, 40, [("bird", (31, 21, 31, 21), 0), ("horse", (1, 1, 60, 40), 0)]),
}


def voc_archive(skip: tuple[str, ...] = ()) -> bytes:
    members = {f"{BASE}/ImageSets/Main/test.txt": "".join(f"{i}\n" for i in IMAGES).encode()}
    for image_id, (width, height, objects) in IMAGES.items():
        members[f"{BASE}/Annotations/{image_id}.xml"] = annotation(image_id, width, height, objects)
        members[f"{BASE}/JPEGImages/{image_id}.jpg"] = jpeg(width, height, COLOURS[image_id])
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for name, data in members.items():
            if name in skip:
                continue
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


@pytest.fixture
def served_voc(http_server, tmp_path, monkeypatch):
    body = voc_archive()
    http_server.files["/VOCtest_06-Nov-2007.tar"] = body
    monkeypatch.setenv("SALBENCH_DOWNLOADS", str(tmp_path / "downloads"))
    return {"url": http_server.url("VOCtest_06-Nov-2007.tar"), "sha256": hashlib.sha256(body).hexdigest(),
            "image_size": SIZE}


def box(rows: slice, cols: slice) -> np.ndarray:
    mask = np.zeros((SIZE, SIZE), dtype=bool)
    mask[rows, cols] = True
    return mask


def test_download_verify_prepare_gives_one_item_per_present_class(served_voc, tmp_path):
    source = create_dataset("voc2007", **served_voc)
    source.fetch(tmp_path / "voc")
    items = source.load(tmp_path / "voc", "eval")
    assert items.item_ids == ["000001-c11", "000001-c14", "000002-c07", "000003-c02", "000003-c12"]
    assert items.image_ids == ["000001", "000001", "000002", "000003", "000003"]
    assert [source.classes[t] for t in items.targets] == ["dog", "person", "cat", "bird", "horse"]
    np.testing.assert_array_equal(items.difficult, [False, True, False, True, False])
    # 100 x 50 -> 20 x 20: x scales by 0.2, y by 0.4; dog edges x 10..60, y 5..30 -> pixels 2..11 both ways
    np.testing.assert_array_equal(items.masks[0], box(slice(2, 12), slice(2, 12)))
    np.testing.assert_array_equal(items.masks[1], box(slice(0, 4), slice(16, 18)))  # person: x 80..90, y 0..10
    cat = box(slice(0, 10), slice(0, 10))  # 80 x 80 -> scale 0.25: edges 0..40 -> pixels 0..9
    cat[15, 15] = True  # edges 60..62 -> 15..15.5: only the centre 15.5
    np.testing.assert_array_equal(items.masks[2], cat)
    np.testing.assert_array_equal(items.masks[3], box(slice(10, 11), slice(10, 11)))  # no centre inside: kept
    assert items.masks[4].all()
    for image, image_id in zip(items.images, items.image_ids):
        assert_colour(image, COLOURS[image_id], SIZE)
    manifest = json.loads((tmp_path / "voc" / "manifest.json").read_text())
    assert manifest["selected_images"] == ["000001", "000002", "000003"]
    assert manifest["archive_sha256"] == served_voc["sha256"]


def test_the_prepared_store_keeps_masks_and_difficult_flags(served_voc, tmp_path):
    source = create_dataset("voc2007", **served_voc)
    source.fetch(tmp_path / "voc")
    data = open_data(prepare_eval_store("voc07", source, tmp_path / "voc", tmp_path / "data.zarr"))
    assert data.sizes["item"] == 5 and data.attrs["classes"][14] == "person"
    np.testing.assert_array_equal(data["difficult"].values, [False, True, False, True, False])
    assert data["mask"].values.sum(axis=(1, 2)).tolist() == [100, 8, 101, 1, 400]


def test_difficult_subset_and_seeded_image_subset(served_voc, tmp_path):
    hard = create_dataset("voc2007", **served_voc, subset="difficult")
    hard.fetch(tmp_path / "hard")
    assert hard.load(tmp_path / "hard", "eval").item_ids == ["000001-c14", "000003-c02"]
    picks = []
    for run in ("a", "b"):
        some = create_dataset("voc2007", **served_voc, n_eval=2, seed=3)
        some.fetch(tmp_path / run)
        picks.append(json.loads((tmp_path / run / "manifest.json").read_text())["selected_images"])
        assert set(some.load(tmp_path / run, "eval").image_ids) == set(picks[-1])
    assert picks[0] == picks[1] and len(picks[0]) == 2 and picks[0] == sorted(picks[0])


def test_torchray_flags_file_replaces_the_area_rule(served_voc, tmp_path):
    flags = tmp_path / "pointing_game_ebp_voc07_difficult.txt"
    rows = {"000001": [0] * 20, "000003": [0] * 20}
    rows["000001"][11] = 1  # dog flagged difficult; 000002 not listed: TorchRay keeps all its classes
    flags.write_text("".join(f"{k}\t" + "\t".join(map(str, v)) + "\n" for k, v in rows.items()))
    source = create_dataset("voc2007", **served_voc, difficult_flags=str(flags))
    source.fetch(tmp_path / "voc")
    np.testing.assert_array_equal(source.load(tmp_path / "voc", "eval").difficult, [True, False, True, False, False])
    manifest = json.loads((tmp_path / "voc" / "manifest.json").read_text())
    assert manifest["difficult_flags_sha256"] == hashlib.sha256(flags.read_bytes()).hexdigest()


def test_a_wrong_hash_names_file_and_hashes_and_leaves_nothing(served_voc, tmp_path):
    wrong = "0" * 64
    source = create_dataset("voc2007", **{**served_voc, "sha256": wrong})
    with pytest.raises(ChecksumError) as err:
        source.fetch(tmp_path / "voc")
    message = str(err.value)
    assert "VOCtest_06-Nov-2007.tar" in message and wrong in message and served_voc["sha256"] in message
    assert_nothing_left(tmp_path / "downloads", tmp_path / "voc")


def test_an_archive_without_the_image_list_is_named(http_server, tmp_path, monkeypatch):
    body = voc_archive(skip=(f"{BASE}/ImageSets/Main/test.txt",))
    http_server.files["/voc.tar"] = body
    monkeypatch.setenv("SALBENCH_DOWNLOADS", str(tmp_path))
    source = create_dataset("voc2007", url=http_server.url("voc.tar"), sha256=hashlib.sha256(body).hexdigest())
    with pytest.raises(DataSetError, match="no member VOCdevkit/VOC2007/ImageSets/Main/test.txt"):
        source.fetch(tmp_path / "voc")
    with pytest.raises(DataSetError, match="only an eval split"):
        source.load(tmp_path / "voc", "train")


def test_params_are_checked(tmp_path):
    with pytest.raises(ParamError, match="subset"):
        create_dataset("voc2007", subset="hard")
    with pytest.raises(ParamError, match="n_eval"):
        create_dataset("voc2007", n_eval=0)
    with pytest.raises(ParamError, match="difficult_flags"):
        create_dataset("voc2007", difficult_flags=str(tmp_path / "missing.txt"))
