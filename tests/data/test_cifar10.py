"""CIFAR-10: the real archive format, served locally, read into verified splits."""

from __future__ import annotations

import hashlib
import os
import pickle

import numpy as np
import pytest

from salbench.data import create_dataset
from salbench.data.cifar10 import FOLDER, read_batch
from salbench.data.splits import DataSetError
from salbench.params import ParamError

from .archive_helpers import tar_bytes

PER_BATCH, N_TEST = 3, 5


def batch_bytes(images: np.ndarray, labels: list[int]) -> bytes:
    """A batch as the official archive pickles it: bytes keys, [N, 3072] uint8 rows of R, G and B planes."""
    rows = images.transpose(0, 3, 1, 2).reshape(len(images), -1)
    return pickle.dumps({b"batch_label": b"test", b"labels": labels, b"data": rows,
                         b"filenames": [b"x.png"] * len(labels)}, protocol=2)


def archive(members: dict[str, bytes]) -> bytes:
    return tar_bytes({f"{FOLDER}/{name}": data for name, data in members.items()})


@pytest.fixture
def served_cifar(http_server, tmp_path, monkeypatch):
    """A small archive in the official layout (5 train batches of 3, a test batch of 5); returns its params
    and the images, with the download cache in ``tmp_path``."""
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (5 * PER_BATCH + N_TEST, 32, 32, 3), dtype=np.uint8)
    labels = [int(v) for v in rng.integers(0, 10, len(images))]
    members = {f"data_batch_{b + 1}": batch_bytes(images[b * PER_BATCH:(b + 1) * PER_BATCH],
                                                  labels[b * PER_BATCH:(b + 1) * PER_BATCH]) for b in range(5)}
    members["test_batch"] = batch_bytes(images[5 * PER_BATCH:], labels[5 * PER_BATCH:])
    members["batches.meta"] = pickle.dumps({b"label_names": [b"airplane"]}, protocol=2)
    body = archive(members)
    http_server.files["/cifar-10-python.tar.gz"] = body
    monkeypatch.setenv("SALBENCH_DOWNLOADS", str(tmp_path / "downloads"))
    params = {"url": http_server.url("cifar-10-python.tar.gz"), "sha256": hashlib.sha256(body).hexdigest(),
              "n_val": 4, "n_eval": 4}
    return params, images, np.asarray(labels)


def test_fetch_reads_the_official_layout_into_splits(served_cifar, tmp_path):
    params, images, labels = served_cifar
    source = create_dataset("cifar10", **params)
    source.fetch(tmp_path / "cifar")
    train, val, test = (source.load(tmp_path / "cifar", split) for split in ("train", "val", "eval"))
    assert len(train) == 11 and len(val) == 4 and len(test) == 4 and test.masks is None
    np.testing.assert_array_equal(train.images, images[:11])  # pixel planes back to [N, H, W, RGB]
    np.testing.assert_array_equal(val.targets, labels[11:15])
    np.testing.assert_array_equal(test.images, images[15:19])
    assert test.item_ids[0] == "test-00000" and val.item_ids[0] == "train-00011"
    assert source.classes[0] == "airplane" and len(source.classes) == 10


def test_a_second_fetch_uses_the_cache(served_cifar, tmp_path, http_server):
    params, _, _ = served_cifar
    create_dataset("cifar10", **params).fetch(tmp_path / "a")
    create_dataset("cifar10", **params).fetch(tmp_path / "b")
    assert len(http_server.requests) == 1
    assert (tmp_path / "a" / "eval.npz").read_bytes() == (tmp_path / "b" / "eval.npz").read_bytes()


def test_a_changed_split_file_is_refused(served_cifar, tmp_path):
    params, _, _ = served_cifar
    source = create_dataset("cifar10", **params)
    source.fetch(tmp_path / "cifar")
    (tmp_path / "cifar" / "val.npz").write_bytes(b"broken")
    with pytest.raises(DataSetError, match="val.npz"):
        source.load(tmp_path / "cifar", "val")


def test_an_archive_without_the_batches_is_named(http_server, tmp_path, monkeypatch):
    body = archive({"readme.txt": b"not cifar"})
    http_server.files["/other.tar.gz"] = body
    monkeypatch.setenv("SALBENCH_DOWNLOADS", str(tmp_path))
    source = create_dataset("cifar10", url=http_server.url("other.tar.gz"), sha256=hashlib.sha256(body).hexdigest())
    with pytest.raises(DataSetError, match="no member cifar-10-batches-py/data_batch_1"):
        source.fetch(tmp_path / "cifar")


def test_batches_may_only_hold_arrays():
    class Exploit:
        def __reduce__(self):
            return (os.system, ("true",))

    with pytest.raises(pickle.UnpicklingError, match="never needs"):
        read_batch(pickle.dumps({b"data": Exploit()}, protocol=2), "data_batch_1")
    with pytest.raises(DataSetError, match="expected"):
        read_batch(pickle.dumps({b"data": np.zeros((2, 10), np.uint8), b"labels": [0, 1]}, protocol=2), "x")


def test_params_are_checked():
    with pytest.raises(ParamError, match="n_val"):
        create_dataset("cifar10", n_val=-1)
