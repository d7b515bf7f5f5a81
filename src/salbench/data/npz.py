"""Byte-reproducible compressed ``.npz`` files, written atomically.

``numpy.savez_compressed`` stamps each member with the current time, so regenerating identical
arrays gives a file with a different sha256. Here every member carries a fixed timestamp, so the
same arrays always give the same bytes and a data set's manifest checksums are reproducible.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from ..store import atomic_path

_EPOCH = (1980, 1, 1, 0, 0, 0)  # the earliest date a zip member can carry


def write_npz(path: str | Path, arrays: dict[str, np.ndarray]) -> Path:
    """Write ``arrays`` (no object dtypes) as a deflate-compressed ``.npz`` at ``path``, atomically."""
    with atomic_path(path) as tmp, zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name in sorted(arrays):
            info = zipfile.ZipInfo(f"{name}.npy", date_time=_EPOCH)
            info.compress_type = zipfile.ZIP_DEFLATED
            with archive.open(info, "w", force_zip64=True) as member:
                np.lib.format.write_array(member, np.asarray(arrays[name]), allow_pickle=False)
    return Path(path)


def read_npz(path: str | Path) -> dict[str, np.ndarray]:
    """All arrays of an ``.npz`` file, read eagerly (pickled objects are refused)."""
    with np.load(path, allow_pickle=False) as archive:
        return {name: archive[name] for name in archive.files}
