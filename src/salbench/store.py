"""Zarr stores of maps and data items, written atomically and verified when read.

A store is written to a temporary sibling path and renamed into place, so a killed job never leaves a
store that looks complete. Each store records a content checksum over its variables and coordinates
(attr ``content_sha256``); :func:`open_store` recomputes it and refuses a store that does not match.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import warnings
from pathlib import Path
from typing import Iterator

import numpy as np
import xarray as xr
import zarr

CHECKSUM_ATTR = "content_sha256"


class StoreError(RuntimeError):
    """A store is missing, incomplete, or fails its checksum."""


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary sibling of ``path``; on success replace ``path`` with it, on failure remove it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    _remove(tmp)
    try:
        yield tmp
    except BaseException:
        _remove(tmp)
        raise
    _remove(path)
    os.replace(tmp, path)


def _remove(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path)
    elif path.exists():
        path.unlink()


def content_checksum(ds: xr.Dataset) -> str:
    """sha256 over names, dtypes, shapes and bytes of every variable and coordinate, in sorted order."""
    digest = hashlib.sha256()
    for name in sorted(map(str, ds.variables)):
        values = ds[name].values
        if values.dtype.kind in "OUT":  # strings read back as object or StringDType: hash their text
            dtype, payload = "str", json.dumps([str(v) for v in values.ravel()]).encode()
        else:
            dtype, payload = values.dtype.str, np.ascontiguousarray(values).tobytes()
        digest.update(f"{name}|{dtype}|{values.shape}|".encode())
        digest.update(payload)
    return digest.hexdigest()


def write_store(ds: xr.Dataset, path: str | Path, item_chunk: int = 64) -> Path:
    """Write ``ds`` as a zstd-compressed zarr v3 store chunked along ``item``, atomically."""
    ds = ds.copy()
    ds.attrs[CHECKSUM_ATTR] = content_checksum(ds)
    ds.attrs = {k: _jsonable(v) for k, v in ds.attrs.items()}
    encoding = {}
    for name, var in ds.data_vars.items():
        chunks = tuple(min(item_chunk, n) if dim == "item" else n for dim, n in zip(var.dims, var.shape))
        encoding[name] = {"chunks": chunks, "compressors": [zarr.codecs.ZstdCodec(level=3)]}
    with atomic_path(path) as tmp:
        ds.to_zarr(tmp, mode="w", consolidated=False, zarr_format=3, encoding=encoding)
    return Path(path)


def _jsonable(value: object) -> object:
    """zarr attrs must be JSON: round-trip through json with str() for anything exotic."""
    return json.loads(json.dumps(value, default=str))


def open_store(path: str | Path, verify: bool = True) -> xr.Dataset:
    """Open a store fully into memory; with ``verify``, recompute and check its content checksum."""
    path = Path(path)
    if not path.is_dir():
        raise StoreError(f"store {path} does not exist")
    try:
        with warnings.catch_warnings():
            # Snakemake drops a .snakemake_timestamp file inside directory outputs; zarr warns about it.
            warnings.filterwarnings("ignore", message=".*not recognized as a component of a Zarr hierarchy.*")
            ds = xr.open_zarr(path, consolidated=False, zarr_format=3).load()
    except Exception as err:  # zarr raises many types for truncated or foreign folders
        raise StoreError(f"store {path} cannot be read ({type(err).__name__}: {err})") from err
    if verify:
        recorded = ds.attrs.get(CHECKSUM_ATTR)
        if recorded is None:
            raise StoreError(f"store {path} has no {CHECKSUM_ATTR} attr: it was not written by salbench.store")
        actual = content_checksum(ds)
        if actual != recorded:
            raise StoreError(f"store {path} fails its checksum: recorded {recorded}, content {actual}")
    return ds


def object_strings(values: list[str] | np.ndarray) -> np.ndarray:
    """String coordinates as an object array (numpy '<U' strings have no zarr v3 spec)."""
    return np.asarray([str(v) for v in values], dtype=object)
