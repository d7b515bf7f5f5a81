"""CIFAR-10 (Krizhevsky 2009): the data set of the CoDA-Nets study.

``fetch`` downloads the official python archive (pinned sha256, resumable, cached: see
:mod:`.download`), reads its pickled batches with an unpickler that admits only the numpy array
reconstructors (a pickle can run code; a tampered archive fails the checksum first anyway), and writes
the usual verified splits: train = the first ``50000 - n_val`` training images, val = the last
``n_val``, eval = the first ``n_eval`` test images. No masks; CoDA's localisation metric builds grids.
"""

from __future__ import annotations

import io
import pickle
import tarfile
from pathlib import Path
from typing import Any, ClassVar, Iterator

import numpy as np

from ..params import ParamError
from .base import Items, register_dataset
from .download import Remote, fetch_file
from .splits import DataSetError, NpzSplitSource

URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
SHA256 = "6d958be074577803d12ecdefd02955f39262c83c16fe9348329d7fe0b5c001ce"  # 170,498,071 bytes
FOLDER = "cifar-10-batches-py"
TRAIN_BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6))
TEST_BATCH = "test_batch"
#: the globals a pickled numpy array needs (numpy 1 and 2 module paths; python 3's protocol-2 pickles of
#: bytes go through ``_codecs.encode``)
_ALLOWED = {("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
            ("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode")}


class _ArrayUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in _ALLOWED:
            raise pickle.UnpicklingError(f"CIFAR-10 batch refers to {module}.{name}, which a data batch never needs")
        return super().find_class(module, name)


def read_batch(data: bytes, member: str) -> tuple[np.ndarray, np.ndarray]:
    """``(images [N,32,32,3] uint8, labels [N] int64)`` of one pickled batch (python 2 pickles: bytes keys)."""
    batch = _ArrayUnpickler(io.BytesIO(data), encoding="bytes").load()
    try:
        pixels = np.asarray(batch[b"data"], dtype=np.uint8)
        labels = np.asarray(batch[b"labels"], dtype=np.int64)
    except (KeyError, TypeError) as err:
        raise DataSetError(f"CIFAR-10 member {member} is not a data batch ({err})") from None
    if pixels.ndim != 2 or pixels.shape[1] != 3 * 32 * 32 or len(labels) != len(pixels):
        raise DataSetError(f"CIFAR-10 member {member}: data {pixels.shape}, {len(labels)} labels; "
                           "expected [N, 3072] and N labels")
    return pixels.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1).copy(), labels


@register_dataset("cifar10")
class CIFAR10(NpzSplitSource):
    """CIFAR-10: 32 px images of 10 classes, downloaded and verified (Krizhevsky 2009)."""

    citation: ClassVar[str] = "Krizhevsky. Learning Multiple Layers of Features from Tiny Images. Tech. report, 2009."
    classes: ClassVar[tuple[str, ...]] = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse",
                                          "ship", "truck")
    #: ``url``/``sha256``: the official archive (change both for a mirror)
    defaults: ClassVar[dict[str, Any]] = {"url": URL, "sha256": SHA256, "n_val": 5000, "n_eval": 10000}

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        p = self.params
        for key in ("n_val", "n_eval"):
            if isinstance(p[key], bool) or not isinstance(p[key], int) or p[key] < 0:
                raise ParamError(f"dataset {self.name!r}: {key} must be an integer >= 0, got {p[key]!r}")

    def remote(self) -> Remote:
        return Remote(self.params["url"], self.params["sha256"], f"{self.params['sha256'][:16]}-cifar-10-python.tar.gz")

    def provenance(self) -> dict[str, Any]:
        return {"archive_sha256": self.params["sha256"]}

    def make_splits(self, root: Path) -> Iterator[tuple[str, Items]]:
        archive = fetch_file(self.remote())
        batches = {}
        with tarfile.open(archive, "r:gz") as tar:
            for name in (*TRAIN_BATCHES, TEST_BATCH):
                member = f"{FOLDER}/{name}"
                try:
                    handle = tar.extractfile(member)
                except KeyError:
                    raise DataSetError(f"{archive} has no member {member}: not the CIFAR-10 python archive") from None
                batches[name] = read_batch(handle.read(), member)
        train_images = np.concatenate([batches[n][0] for n in TRAIN_BATCHES])
        train_labels = np.concatenate([batches[n][1] for n in TRAIN_BATCHES])
        n_val = self.params["n_val"]
        if n_val >= len(train_images):
            raise ParamError(f"dataset {self.name!r}: n_val {n_val} leaves no training images of {len(train_images)}")
        cut = len(train_images) - n_val
        yield "train", _items("train", np.arange(cut), train_images[:cut], train_labels[:cut])
        yield "val", _items("train", np.arange(cut, len(train_images)), train_images[cut:], train_labels[cut:])
        test_images, test_labels = batches[TEST_BATCH]
        n_eval = min(self.params["n_eval"], len(test_images))
        yield "eval", _items("test", np.arange(n_eval), test_images[:n_eval], test_labels[:n_eval])


def _items(prefix: str, indices: np.ndarray, images: np.ndarray, labels: np.ndarray) -> Items:
    ids = [f"{prefix}-{i:05d}" for i in indices]
    return Items(item_ids=ids, image_ids=list(ids), images=images, targets=labels)
