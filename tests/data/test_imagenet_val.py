"""ImageNet validation (manual download): the official file layouts, devkit labels, class-box masks, and the
message that says which files to put where."""

from __future__ import annotations

import io
import tarfile

import numpy as np
import pytest
from scipy.io import savemat

from salbench.data import create_dataset
from salbench.data.imagenet_val import BOXES_ARCHIVE, DEVKIT_ARCHIVE, IMAGES_ARCHIVE, N_VAL, image_name
from salbench.data.images import seeded_subset
from salbench.data.prepare import prepare_eval_store
from salbench.data.splits import DataSetError
from salbench.store import open_store

from .archive_helpers import encode, solid, tar_bytes

SIZE = 16
N_EVAL, SEED = 3, 0


def wnid(ilsvrc_id: int) -> str:
    """A distinct, unsorted WordNet-like id per ILSVRC2012_ID (the real ids are not in sorted order either)."""
    return f"n{(ilsvrc_id * 7919) % 100000:08d}"


def truth(index: int) -> int:
    """The ILSVRC2012_ID of validation image ``index`` (1-based) in the fake ground truth."""
    return (index * 31) % 1000 + 1


def meta_mat() -> bytes:
    dtype = [("ILSVRC2012_ID", "O"), ("WNID", "O"), ("words", "O"), ("num_children", "O")]
    rows = [(k, wnid(k), f"class {k}", 0) for k in range(1, 1001)]
    rows += [(1001, "n99999998", "animal", 5), (1002, "n99999999", "thing", 7)]  # inner synsets: not classes
    buffer = io.BytesIO()
    savemat(buffer, {"synsets": np.array(rows, dtype=dtype)})
    return buffer.getvalue()


def xml(width: int, height: int, objects: list[tuple[str, tuple[int, int, int, int]]]) -> bytes:
    parts = [f"<annotation><folder>val</folder><size><width>{width}</width><height>{height}</height>"
             "<depth>3</depth></size>"]
    for name, (x0, y0, x1, y1) in objects:
        parts.append(f"<object><name>{name}</name><bndbox><xmin>{x0}</xmin><ymin>{y0}</ymin><xmax>{x1}</xmax>"
                     f"<ymax>{y1}</ymax></bndbox></object>")
    return ("".join(parts) + "</annotation>").encode()


def layout() -> tuple[dict[str, dict[str, bytes]], list[int], list[np.ndarray]]:
    """The three containers' members, the chosen image indices and their expected masks."""
    chosen = [int(k) + 1 for k in seeded_subset(N_VAL, N_EVAL, SEED)]
    images, boxes, masks = {}, {}, []
    for n, i in enumerate(chosen):
        own, other = wnid(truth(i)), wnid(truth(i) % 1000 + 1)
        if n == 0:  # 32 x 16, the class box covers the left half; stretched to 16: columns 0..7
            width, objects = 32, [(own, (1, 1, 16, 16)), (other, (17, 1, 32, 16))]
            mask = np.zeros((SIZE, SIZE), bool)
            mask[:, :8] = True
        else:  # 16 x 16: two class boxes (union) and another class's box (left out)
            width, objects = 16, [(own, (2, 3, 5, 6)), (own, (10, 10, 12, 16)), (other, (1, 12, 4, 16))]
            mask = np.zeros((SIZE, SIZE), bool)
            mask[2:6, 1:5] = True
            mask[9:16, 9:12] = True
        images[image_name(i)] = encode(solid(16, width, (40 * n + 30, 200, 90)), "JPEG")
        boxes[f"val/{image_name(i)[:-5]}.xml"] = xml(width, 16, objects)
        masks.append(mask)
    devkit = {"ILSVRC2012_devkit_t12/data/meta.mat": meta_mat(),
              "ILSVRC2012_devkit_t12/data/ILSVRC2012_validation_ground_truth.txt":
                  "".join(f"{truth(i)}\n" for i in range(1, N_VAL + 1)).encode()}
    return {"images": images, "boxes": boxes, "devkit": devkit}, chosen, masks


def put(root, members: dict[str, dict[str, bytes]], extracted: bool) -> None:
    root.mkdir(parents=True, exist_ok=True)
    if extracted:  # the archives extracted in place (the images into ILSVRC2012_img_val/)
        for kind, files in members.items():
            base = root / "ILSVRC2012_img_val" if kind == "images" else root
            for name, data in files.items():
                (base / name).parent.mkdir(parents=True, exist_ok=True)
                (base / name).write_bytes(data)
        return
    (root / IMAGES_ARCHIVE).write_bytes(tar_bytes(members["images"], gz=False))
    (root / BOXES_ARCHIVE).write_bytes(tar_bytes(members["boxes"]))
    (root / DEVKIT_ARCHIVE).write_bytes(tar_bytes(members["devkit"]))


@pytest.mark.parametrize("extracted", [False, True], ids=["archives", "folders"])
def test_items_have_devkit_targets_and_class_box_masks(tmp_path, extracted):
    members, chosen, masks = layout()
    put(tmp_path / "imagenet", members, extracted)
    if not extracted:
        assert tarfile.is_tarfile(tmp_path / "imagenet" / IMAGES_ARCHIVE)
    source = create_dataset("imagenet_val", root=str(tmp_path / "imagenet"), image_size=SIZE, resize="stretch",
                            n_eval=N_EVAL, seed=SEED)
    source.fetch(tmp_path / "out")
    items = source.load(tmp_path / "out", "eval")
    ranks = {w: k for k, w in enumerate(sorted(wnid(k) for k in range(1, 1001)))}
    assert items.item_ids == [f"val-{i:08d}" for i in chosen]
    np.testing.assert_array_equal(items.targets, [ranks[wnid(truth(i))] for i in chosen])
    for got, want in zip(items.masks, masks):
        np.testing.assert_array_equal(got, want)
    assert np.abs(items.images[1].astype(int) - np.array([70, 200, 90])).max() <= 3
    assert len(source.load(tmp_path / "out", "train")) == 0 and len(source.classes) == 1000
    store = open_store(prepare_eval_store("imagenet", source, tmp_path / "out", tmp_path / "data.zarr"))
    assert store.attrs["has_masks"] and store.sizes["item"] == N_EVAL


def test_missing_files_say_what_to_put_where(tmp_path):
    root = tmp_path / "manual"
    source = create_dataset("imagenet_val", root=str(root))
    with pytest.raises(DataSetError) as raised:
        source.fetch(tmp_path / "out")
    message = str(raised.value)
    assert "manual download" in message and "image-net.org" in message and str(root.resolve()) in message
    for name in (IMAGES_ARCHIVE, BOXES_ARCHIVE, DEVKIT_ARCHIVE, "meta.mat", "ILSVRC2012_validation_ground_truth.txt",
                 "datasets.<name>.params.root"):
        assert name in message
    members, _, _ = layout()
    root.mkdir()
    (root / DEVKIT_ARCHIVE).write_bytes(tar_bytes(members["devkit"]))
    with pytest.raises(DataSetError) as raised:
        source.fetch(tmp_path / "out")
    missing = str(raised.value).split("missing: ")[1]
    assert IMAGES_ARCHIVE in missing and BOXES_ARCHIVE in missing and DEVKIT_ARCHIVE not in missing
    assert not (tmp_path / "out" / "manifest.json").exists()


def test_a_devkit_without_1000_classes_is_refused(tmp_path):
    members, _, _ = layout()
    members["devkit"]["ILSVRC2012_devkit_t12/data/ILSVRC2012_validation_ground_truth.txt"] = b"1\n2\n"
    put(tmp_path / "imagenet", members, extracted=False)
    with pytest.raises(DataSetError, match="should list 50000"):
        create_dataset("imagenet_val", root=str(tmp_path / "imagenet"), n_eval=N_EVAL).fetch(tmp_path / "out")
