"""Byte-reproducible compressed ``.npz`` files, written atomically and streamed chunk by chunk.

``numpy.savez_compressed`` stamps each member with the current time, so regenerating identical
arrays gives a file with a different sha256. Here every member carries a fixed timestamp, so the
same arrays always give the same bytes and a data set's manifest checksums are reproducible.

A split of millions of images does not fit in memory, so arrays can be written from consecutive row
chunks (:func:`write_npz_chunks`: each chunk is spooled to a temporary file beside the output, then
every member is packed from its spool) and read back chunk by chunk (:func:`iter_npz`). The file is the
one :func:`write_npz` writes from the concatenated arrays, byte for byte.
"""

from __future__ import annotations

import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Iterable, Iterator

import numpy as np

from ..store import atomic_path

_EPOCH = (1980, 1, 1, 0, 0, 0)  # the earliest date a zip member can carry


@dataclass
class _Spool:
    """One array's rows as written so far: raw C-order bytes in ``file``, one ``(dtype, rows)`` per chunk."""

    file: IO[bytes]
    row_shape: tuple[int, ...]
    segments: list[tuple[np.dtype, int]] = field(default_factory=list)

    def add(self, name: str, values: np.ndarray) -> None:
        if values.dtype.hasobject:
            raise TypeError(f"npz array {name!r}: object arrays cannot be stored")
        if values.shape[1:] != self.row_shape:
            raise ValueError(f"npz array {name!r}: a chunk of rows {values.shape[1:]} follows rows {self.row_shape}")
        self.file.write(np.ascontiguousarray(values).data)
        self.segments.append((values.dtype, len(values)))

    def dtype(self) -> np.dtype:
        """The stored dtype: strings widen to the longest chunk's width; other kinds must agree."""
        return np.result_type(*(dtype for dtype, _ in self.segments))

    def rows(self) -> Iterator[np.ndarray]:
        """The spooled chunks, read back one at a time, as the stored dtype."""
        dtype, per_row = self.dtype(), int(np.prod(self.row_shape, dtype=np.int64))
        self.file.seek(0)
        for chunk_dtype, rows in self.segments:
            values = np.fromfile(self.file, dtype=chunk_dtype, count=rows * per_row)
            yield values.astype(dtype, copy=False)


def write_npz(path: str | Path, arrays: dict[str, np.ndarray]) -> Path:
    """Write ``arrays`` (no object dtypes) as a deflate-compressed ``.npz`` at ``path``, atomically."""
    return write_npz_chunks(path, [arrays])


def write_npz_chunks(path: str | Path, chunks: Iterable[dict[str, np.ndarray]]) -> Path:
    """Write arrays given as consecutive row chunks (every chunk has the same names, at least one chunk) as
    one ``.npz``, atomically, with one chunk in memory at a time."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f".{path.name}.spool-", dir=path.parent) as spool_dir:
        spools: dict[str, _Spool] = {}
        for chunk in chunks:
            if spools and set(chunk) != set(spools):
                raise ValueError(f"npz chunk arrays {sorted(chunk)} differ from the first chunk's {sorted(spools)}")
            for name, values in chunk.items():
                values = np.asarray(values)
                if name not in spools:
                    spools[name] = _Spool(open(Path(spool_dir) / f"{len(spools)}.raw", "w+b"), values.shape[1:])
                spools[name].add(name, values)
        if not spools:
            raise ValueError(f"{path}: no chunks to write")
        try:
            with atomic_path(path) as tmp, zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as archive:
                for name in sorted(spools):
                    _pack(archive, name, spools[name])
        finally:
            for spool in spools.values():
                spool.file.close()
    return path


def _pack(archive: zipfile.ZipFile, name: str, spool: _Spool) -> None:
    """Write one spooled array as the member ``{name}.npy`` (the bytes ``numpy.lib.format.write_array`` writes)."""
    info = zipfile.ZipInfo(f"{name}.npy", date_time=_EPOCH)
    info.compress_type = zipfile.ZIP_DEFLATED
    shape = (sum(rows for _, rows in spool.segments), *spool.row_shape)
    header = {"descr": np.lib.format.dtype_to_descr(spool.dtype()), "fortran_order": False, "shape": shape}
    with archive.open(info, "w", force_zip64=True) as member:
        np.lib.format.write_array_header_1_0(member, header)
        for values in spool.rows():
            member.write(values.data)


def read_npz(path: str | Path) -> dict[str, np.ndarray]:
    """All arrays of an ``.npz`` file, read eagerly (pickled objects are refused)."""
    with np.load(path, allow_pickle=False) as archive:
        return {name: archive[name] for name in archive.files}


def iter_npz(path: str | Path, rows: int) -> Iterator[dict[str, np.ndarray]]:
    """Consecutive chunks of ``rows`` rows of every array of an ``.npz`` whose arrays have equal lengths
    (one chunk, possibly empty, for empty arrays), decompressed as they are read."""
    if rows < 1:
        raise ValueError(f"rows per chunk must be >= 1, got {rows}")
    with zipfile.ZipFile(path) as archive:
        members = {}
        for member_name in sorted(archive.namelist()):
            member = archive.open(member_name)
            members[member_name.removesuffix(".npy")] = (member, *_read_header(member, f"{path}:{member_name}"))
        lengths = {shape[0] if shape else 0 for _, shape, _ in members.values()}
        if len(lengths) > 1:
            raise ValueError(f"{path}: arrays of different lengths {sorted(lengths)} cannot be read in chunks")
        total = lengths.pop() if lengths else 0
        for start in range(0, max(total, 1), rows):
            count = min(rows, total - start)
            yield {name: _read_rows(member, shape, dtype, count) for name, (member, shape, dtype) in members.items()}


def _read_header(member: IO[bytes], what: str) -> tuple[tuple[int, ...], np.dtype]:
    version = np.lib.format.read_magic(member)
    read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
    shape, fortran_order, dtype = read(member)
    if dtype.hasobject or fortran_order:
        raise ValueError(f"{what}: object or Fortran-order arrays cannot be read in chunks")
    return shape, dtype


def _read_rows(member: IO[bytes], shape: tuple[int, ...], dtype: np.dtype, count: int) -> np.ndarray:
    size = count * int(np.prod(shape[1:], dtype=np.int64)) * dtype.itemsize
    data = bytearray(size)
    view, got = memoryview(data), 0
    while got < size:  # a zip member may return fewer bytes than asked
        read = member.readinto(view[got:])
        if not read:
            raise ValueError(f"npz member ends after {got} of {size} bytes")
        got += read
    return np.frombuffer(data, dtype=dtype).reshape(count, *shape[1:])
