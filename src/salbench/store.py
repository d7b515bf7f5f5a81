"""Zarr stores of maps and data items, written atomically and verified when read.

A store is written to a temporary sibling path and renamed into place, so a killed job never leaves a
store that looks complete. Each store records a content checksum over its variables and coordinates
(attr ``content_sha256``); :func:`open_store` recomputes it and refuses a store that does not match. A store
with an ``item`` dimension also records one checksum per chunk of items (attr ``item_chunk_sha256``), so a
job that needs some items only (a shard, the first items of a sanity check) reads and verifies only the
chunks that hold them (``open_store(path, items=(start, stop))``), not a 50,000-image data set.
Score tables (parquet) carry the same kind of checksum in their schema metadata (:func:`write_table`,
:func:`read_table`).

The checksum covers content only, not attrs: attrs hold run times and provenance, so two runs that
computed the same numbers have equal checksums (the workflow tests compare them).
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import shutil
import socket
import warnings
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np
import pandas as pd
import xarray as xr
import zarr

CHECKSUM_ATTR = "content_sha256"
#: per item chunk: ``{"size": items per chunk, "items": count, "chunks": [sha256, ...], "rest": sha256}``
CHUNK_CHECKSUMS_ATTR = "item_chunk_sha256"
#: key of the content checksum in a parquet table's schema metadata
TABLE_CHECKSUM_KEY = b"salbench.content_sha256"
#: key of a table's JSON attrs (e.g. a shard's item range) in its schema metadata: not content, not checksummed
TABLE_ATTRS_KEY = b"salbench.attrs"
_TMP_MARK = ".tmp-"
#: zarr's warning about a file it does not know inside a store: Snakemake drops ``.snakemake_timestamp`` into
#: every directory output
SNAKEMAKE_MARK_WARNING = ".*not recognized as a component of a Zarr hierarchy.*"


class StoreError(RuntimeError):
    """A store is missing, incomplete, or fails its checksum."""


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary sibling of ``path``; on success replace ``path`` with it, on failure remove it.

    The temporary name holds host and pid (``.{name}.tmp-{host}-{pid}``); temporaries of ``path`` left by
    killed processes of this host are removed first. A previous ``path`` is renamed aside before the new
    one is renamed in, so a kill at any point leaves either the old store, the new one, or none, never
    a half-deleted one.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(path)
    tmp = _temporary(path, "")
    _remove(tmp)
    try:
        yield tmp
    except BaseException:
        _remove(tmp)
        raise
    old = _temporary(path, "old-")
    for attempt in range(5):  # another writer of the same path may put its store in between: the last one wins
        if path.is_dir() and not path.is_symlink():
            _remove(old)
            with contextlib.suppress(FileNotFoundError):
                os.replace(path, old)
        try:
            os.replace(tmp, path)
            break
        except OSError as err:
            if err.errno not in (errno.ENOTEMPTY, errno.EEXIST, errno.EISDIR) or attempt == 4:
                _remove(tmp)
                raise
    _remove(old)


def _temporary(path: Path, kind: str) -> Path:
    return path.with_name(f".{path.name}{_TMP_MARK}{kind}{socket.gethostname()}-{os.getpid()}")


def remove_stale_temporaries(path: str | Path) -> list[Path]:
    """Remove temporaries of ``path`` whose writer (a process of this host) is gone; returns them."""
    path = Path(path)
    host = socket.gethostname()
    removed = []
    for candidate in path.parent.glob(f".{path.name}{_TMP_MARK}*"):
        rest = candidate.name[len(f".{path.name}{_TMP_MARK}"):].removeprefix("old-")
        owner, _, pid = rest.rpartition("-")
        if owner == host and pid.isdigit() and not _alive(int(pid)):
            _remove(candidate)
            removed.append(candidate)
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()


def _hash_array(digest: "hashlib._Hash", name: str, values: np.ndarray) -> None:
    """Feed one named array to ``digest``: name, dtype, shape and bytes (strings and objects as JSON text)."""
    values = np.asarray(values)
    _hash_parts(digest, name, values.shape, [values])


def _hash_parts(digest: "hashlib._Hash", name: str, shape: tuple[int, ...], parts: Iterable[np.ndarray]) -> None:
    """:func:`_hash_array` of the array of ``shape`` given as consecutive parts along its first axis (at least
    one part), so an array larger than memory is hashed a part at a time."""
    text = written = None
    for part in map(np.asarray, parts):
        if text is None:
            text = part.dtype.kind in "OUT"  # strings read back as object or StringDType: hash their text
            digest.update(f"{name}|{'str' if text else part.dtype.str}|{shape}|{'[' if text else ''}".encode())
        if text:  # the JSON list of all parts' strings, as json.dumps writes it
            body = json.dumps([str(v) for v in part.ravel()])[1:-1]
            if body:
                digest.update(f"{', ' if written else ''}{body}".encode())
                written = True
        else:  # the array's bytes in C order, hashed in place (no copy unless the array is not C-contiguous)
            digest.update(np.ascontiguousarray(part).reshape(-1).view(np.uint8))
    if text:
        digest.update(b"]")


def content_checksum(ds: xr.Dataset) -> str:
    """sha256 over names, dtypes, shapes and bytes of every variable and coordinate, in sorted order."""
    digest = hashlib.sha256()
    for name in sorted(map(str, ds.variables)):
        _hash_array(digest, name, ds[name].values)
    return digest.hexdigest()


def item_chunk_checksums(ds: xr.Dataset, size: int) -> tuple[list[str], str]:
    """sha256 of each chunk of ``size`` items (every variable and coordinate along ``item``, in sorted order,
    sliced to the chunk) and of the rest (those without ``item``). A part of a store that starts at a chunk
    boundary has the chunks of the store's checksums."""
    names = sorted(map(str, ds.variables))
    along = [name for name in names if "item" in ds[name].dims]
    rest = hashlib.sha256()
    for name in names:
        if name not in along:
            _hash_array(rest, name, ds[name].values)
    arrays = {name: (ds[name].values, ds[name].dims.index("item")) for name in along}
    chunks = []
    for lo in range(0, ds.sizes["item"], size):
        digest = hashlib.sha256()
        for name, (values, axis) in arrays.items():
            _hash_array(digest, name, values.take(range(lo, min(lo + size, values.shape[axis])), axis=axis))
        chunks.append(digest.hexdigest())
    return chunks, rest.hexdigest()


def table_checksum(table: pd.DataFrame) -> str:
    """sha256 over the column names (in order), dtypes, lengths and values of a table."""
    digest = hashlib.sha256()
    for position, name in enumerate(table.columns):
        column = table[name]
        if isinstance(column.dtype, np.dtype) and column.dtype.kind in "biufcmM":
            values = column.to_numpy()
            if values.dtype.kind in "fc":  # one NaN bit pattern: a parquet round trip may not keep -NaN's sign
                values = np.where(np.isnan(values), np.array(np.nan, dtype=values.dtype), values)
            _hash_array(digest, f"{position}:{name}", values)
        else:  # strings (object, or pandas' string dtype after a read), nullable types: text, missing as null
            text = [None if _missing(v) else str(v) for v in column.astype(object).to_numpy()]
            digest.update(f"{position}:{name}|str|{len(text)}|".encode())
            digest.update(json.dumps(text).encode())
    return digest.hexdigest()


def _missing(value: object) -> bool:
    return value is None or value is pd.NA or (isinstance(value, float) and value != value)


def write_store(ds: xr.Dataset, path: str | Path, item_chunk: int = 64) -> Path:
    """Write ``ds`` as a zstd-compressed zarr v3 store chunked along ``item``, atomically."""
    ds = ds.copy()
    ds.attrs[CHECKSUM_ATTR] = content_checksum(ds)
    if "item" in ds.dims:
        chunks, rest = item_chunk_checksums(ds, item_chunk)
        ds.attrs[CHUNK_CHECKSUMS_ATTR] = {"size": item_chunk, "items": ds.sizes["item"], "chunks": chunks, "rest": rest}
    ds.attrs = {k: _jsonable(v) for k, v in ds.attrs.items()}
    with atomic_path(path) as tmp:
        # every chunk on disk, even one of fill values: a missing chunk file then always means damage
        ds.to_zarr(tmp, mode="w", consolidated=False, zarr_format=3, encoding=_encoding(ds, item_chunk),
                   write_empty_chunks=True)
    return Path(path)


def _encoding(ds: xr.Dataset, item_chunk: int) -> dict[str, dict]:
    """zstd-compressed chunks of ``item_chunk`` items (whole along every other dimension) for each variable."""
    return {name: {"chunks": tuple(min(item_chunk, n) if dim == "item" else n for dim, n in zip(var.dims, var.shape)),
                   "compressors": [zarr.codecs.ZstdCodec(level=3)]} for name, var in ds.data_vars.items()}


def write_store_parts(parts: Iterable[xr.Dataset], path: str | Path, item_chunk: int = 64) -> Path:
    """Write the store :func:`write_store` writes from the concatenation of ``parts`` along ``item`` (the same
    checksums), with one part in memory at a time, for data larger than memory. Every part but the last holds
    a multiple of ``item_chunk`` items, ``item`` is the first dimension of the variables that have it, and
    the store's attrs are the first part's."""
    chunks: list[str] = []
    rest, count, attrs = None, 0, {}
    with atomic_path(path) as tmp:
        for part in parts:
            if count % item_chunk:
                raise ValueError(f"store {path}: only the last part may end inside a chunk of {item_chunk} items")
            part_chunks, part_rest = item_chunk_checksums(part, item_chunk)
            part = part.copy()
            if rest is None:
                rest, attrs = part_rest, {k: _jsonable(v) for k, v in part.attrs.items()}
                part.attrs = attrs
                part.to_zarr(tmp, mode="w", consolidated=False, zarr_format=3,
                             encoding=_encoding(part, item_chunk), write_empty_chunks=True)
            elif part_rest != rest:
                raise ValueError(f"store {path}: the variables without an item dimension differ between parts")
            else:  # appended array by array: xarray's append would read the whole item index back first
                for name, var in part.variables.items():
                    if "item" in var.dims:
                        array = zarr.open_array(tmp / name, mode="r+", zarr_format=3).with_config(
                            {"write_empty_chunks": True})
                        array.append(np.asarray(var.values), axis=var.dims.index("item"))
            chunks += part_chunks
            count += part.sizes["item"]
        if rest is None:
            raise ValueError(f"store {path}: no parts to write")
        group = zarr.open_group(tmp, mode="r+", zarr_format=3)
        group.attrs.put({**attrs, CHECKSUM_ATTR: _stored_checksum(group, item_chunk),
                         CHUNK_CHECKSUMS_ATTR: {"size": item_chunk, "items": count, "chunks": chunks, "rest": rest}})
    return Path(path)


def _stored_checksum(group: zarr.Group, size: int) -> str:
    """:func:`content_checksum` of a written store, read back ``size`` items at a time."""
    digest = hashlib.sha256()
    for name, array in sorted(group.arrays()):
        dims = tuple(array.metadata.dimension_names or ())
        if "item" in dims[1:]:
            raise ValueError(f"store variable {name!r}: item must be its first dimension, not {dims}")
        if dims[:1] == ("item",):
            parts = (array[lo:lo + size] for lo in range(0, max(array.shape[0], 1), size))
        else:
            parts = iter([array[...]])
        _hash_parts(digest, name, array.shape, parts)
    return digest.hexdigest()


def stored_checksum(path: str | Path, size: int) -> str:
    """:func:`content_checksum` of the store at ``path``, read ``size`` items at a time (``item`` the first
    dimension of every variable that has it): checks a store larger than memory (``salbench verify``)."""
    return _stored_checksum(zarr.open_group(path, mode="r", zarr_format=3), size)


def _jsonable(value: object) -> object:
    """zarr attrs must be JSON: round-trip through json with str() for anything exotic."""
    return json.loads(json.dumps(value, default=str))


def _open_lazily(path: Path) -> xr.Dataset:
    if not path.is_dir():
        raise StoreError(f"store {path} does not exist")
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=SNAKEMAKE_MARK_WARNING)
            return xr.open_zarr(path, consolidated=False, zarr_format=3)
    except Exception as err:  # zarr raises many types for truncated or foreign folders
        raise StoreError(f"store {path} cannot be read ({type(err).__name__}: {err})") from err


def _load(ds: xr.Dataset, path: Path) -> xr.Dataset:
    try:
        return ds.load()
    except Exception as err:  # a chunk file gone or truncated
        raise StoreError(f"store {path} cannot be read ({type(err).__name__}: {err}){_missing_chunks(path)}; "
                         "rerun the job that writes it") from err


def check_item_range(start: int, stop: int, count: int) -> None:
    """Refuse an item range ``[start, stop)`` outside ``count`` items."""
    if not 0 <= start <= stop <= count:
        raise ValueError(f"item range {start}:{stop} is outside the data store's {count} items")


def open_store(path: str | Path, verify: bool = True, items: tuple[int, int] | None = None) -> xr.Dataset:
    """Open a store into memory; with ``verify``, recompute and check its content checksum.

    With ``items = (start, stop)``, only those items (and the variables without an ``item`` dimension) are
    read, and only the item chunks that hold them are verified against their recorded checksums (a store
    written before chunk checksums were recorded is read and verified whole).
    """
    path = Path(path)
    ds = _open_lazily(path)
    if items is None:
        return _verified(_load(ds, path), path, verify)
    start, stop = items
    check_item_range(start, stop, ds.sizes["item"])
    recorded = ds.attrs.get(CHUNK_CHECKSUMS_ATTR)
    if recorded is None:
        return _verified(_load(ds, path), path, verify).isel(item=slice(start, stop))
    size = int(recorded["size"])
    first, last = start // size, -(-stop // size)
    part = _load(ds.isel(item=slice(first * size, last * size)), path)
    if verify:
        chunks, rest = item_chunk_checksums(part, size)
        if chunks != recorded["chunks"][first:last] or rest != recorded["rest"]:
            bad = [first + i for i, (a, b) in enumerate(zip(chunks, recorded["chunks"][first:last])) if a != b]
            what = f"item chunks {bad}" if bad else "variables without an item dimension"
            raise StoreError(f"store {path} fails its checksum in {what} (items {start}:{stop} read): the content "
                             f"differs from the recorded {CHUNK_CHECKSUMS_ATTR}{_missing_chunks(path)}; "
                             "rerun the job that writes it")
    return part.isel(item=slice(start - first * size, stop - first * size))


def first_items(path: str | Path, count: int) -> xr.Dataset:
    """The first ``count`` items of a store (all of them when it holds fewer), read and verified by chunk."""
    return open_store(path, items=(0, min(count, _open_lazily(Path(path)).sizes["item"])))


def _verified(ds: xr.Dataset, path: Path, verify: bool) -> xr.Dataset:
    if verify:
        recorded = ds.attrs.get(CHECKSUM_ATTR)
        if recorded is None:
            raise StoreError(f"store {path} has no {CHECKSUM_ATTR} attr: it was not written by salbench.store")
        actual = content_checksum(ds)
        if actual != recorded:
            raise StoreError(f"store {path} fails its checksum: recorded {recorded}, content {actual}"
                             f"{_missing_chunks(path)}; rerun the job that writes it")
    return ds


def _missing_chunks(path: Path) -> str:
    """``" (chunks missing: saliency 1 of 3)"`` for arrays of a store with chunk files gone, else ``""``."""
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=SNAKEMAKE_MARK_WARNING)
            group = zarr.open_group(path, mode="r", zarr_format=3)
            gaps = [f"{name} {a.nchunks - a.nchunks_initialized} of {a.nchunks}"
                    for name, a in sorted(group.arrays()) if a.nchunks_initialized < a.nchunks]
    except Exception:  # noqa: BLE001 - only a hint for the message
        return ""
    return f" (chunks missing: {', '.join(gaps)})" if gaps else ""


def write_table(table: pd.DataFrame, path: str | Path, attrs: dict | None = None) -> Path:
    """Write a tidy table as parquet, atomically, with its :func:`table_checksum` in the schema metadata, and
    ``attrs`` (JSON; read back by :func:`table_attrs`) when given."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = table.reset_index(drop=True)
    arrow = pa.Table.from_pandas(table, preserve_index=False)
    metadata = {**(arrow.schema.metadata or {}), TABLE_CHECKSUM_KEY: table_checksum(table).encode()}
    if attrs:
        metadata[TABLE_ATTRS_KEY] = json.dumps(_jsonable(attrs), sort_keys=True).encode()
    with atomic_path(path) as tmp:
        pq.write_table(arrow.replace_schema_metadata(metadata), tmp)
    return Path(path)


def read_table(path: str | Path, verify: bool = True) -> pd.DataFrame:
    """Read a parquet table; with ``verify``, recompute and check the checksum :func:`write_table` recorded."""
    import pyarrow.parquet as pq

    path = Path(path)
    if not path.is_file():
        raise StoreError(f"table {path} does not exist")
    try:
        arrow = pq.read_table(path)
        table = arrow.to_pandas()
    except Exception as err:  # noqa: BLE001 - pyarrow raises many types for truncated files
        raise StoreError(f"table {path} cannot be read ({type(err).__name__}: {err})") from err
    if verify:
        recorded = (arrow.schema.metadata or {}).get(TABLE_CHECKSUM_KEY)
        if recorded is None:
            raise StoreError(f"table {path} has no {TABLE_CHECKSUM_KEY.decode()} metadata: it was not written by "
                             "salbench.store.write_table")
        actual = table_checksum(table)
        if actual != recorded.decode():
            raise StoreError(f"table {path} fails its checksum: recorded {recorded.decode()}, content {actual}; "
                             "rerun the job that writes it")
    return table


def table_attrs(path: str | Path) -> dict:
    """The ``attrs`` :func:`write_table` recorded in a table's schema metadata (``{}`` when none)."""
    import pyarrow.parquet as pq

    try:
        metadata = pq.read_schema(path).metadata or {}
    except Exception as err:  # noqa: BLE001 - pyarrow raises many types for truncated files
        raise StoreError(f"table {path} cannot be read ({type(err).__name__}: {err})") from err
    return json.loads(metadata[TABLE_ATTRS_KEY]) if TABLE_ATTRS_KEY in metadata else {}


def object_strings(values: list[str] | np.ndarray) -> np.ndarray:
    """String coordinates as an object array (numpy '<U' strings have no zarr v3 spec)."""
    return np.asarray([str(v) for v in values], dtype=object)
