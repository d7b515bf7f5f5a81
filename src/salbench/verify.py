"""``salbench verify``: check every store and table under a results folder against the checksums it recorded.

A run does not re-read finished results (Snakemake judges them by time stamps), so damage that happens between
runs (a flipped bit, a truncated copy, a file edited or deleted by hand) stays unnoticed until a job reads the
file. This walks the folder, recomputes each zarr store's item-chunk checksums (``item_chunk_sha256``, a block
of items at a time, so a data set larger than memory is checked too) and content checksum
(``content_sha256``), each parquet table's checksum (:mod:`salbench.store`) and each trained checkpoint's
sha256 (recorded in the ``.train.json`` beside it), and reports what fails.

With ``remove``, each damaged result is removed: the store or table itself, or the folder Snakemake wrote it
into when that folder is a job's declared output (it holds Snakemake's ``.snakemake_timestamp``). The next run
then redoes exactly the jobs whose outputs are gone, and the jobs downstream of them.
"""

from __future__ import annotations

import json
import os
import shutil
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import zarr

from .provenance import file_sha256
from .shards import store_size
from .store import (CHECKSUM_ATTR, CHUNK_CHECKSUMS_ATTR, SNAKEMAKE_MARK_WARNING, StoreError, open_store, read_table,
                    stored_checksum)

#: items read at once when a store is checked by blocks of its item chunks
BLOCK_ITEMS = 1024
#: Snakemake's mark inside a folder that a job declared as its output (``directory(...)``)
DIRECTORY_OUTPUT_MARK = ".snakemake_timestamp"
_TMP_MARK = ".tmp-"


@dataclass(frozen=True)
class Finding:
    """One checked store, table or checkpoint: ``error`` is None when it matches its checksums."""

    path: Path
    kind: str  # "store", "table" or "checkpoint"
    error: str | None = None


def artifacts(root: Path) -> Iterator[tuple[str, Path]]:
    """``("store", path)`` for each zarr store (a ``*.zarr`` folder), ``("table", path)`` for each parquet table and
    ``("checkpoint", path)`` for each checkpoint with a training record (:func:`training_record`) under ``root`` (or
    ``root`` itself), in path order; temporaries of unfinished writes are skipped."""
    if root.is_dir() and root.suffix != ".zarr":
        for folder, dirs, files in os.walk(root):
            dirs[:] = sorted(d for d in dirs if not _temporary(d))
            for name in [d for d in dirs if d.endswith(".zarr")]:
                dirs.remove(name)  # a store's inside is checked by its checksums, not walked
                yield "store", Path(folder) / name
            for name in sorted(files):
                kind = _kind(Path(folder) / name)
                if kind and not _temporary(name):
                    yield kind, Path(folder) / name
    elif _kind(root):
        yield _kind(root), root


def _kind(path: Path) -> str | None:
    if path.suffix == ".zarr":
        return "store"
    if path.suffix == ".parquet":
        return "table"
    if path.suffix == ".pt" and training_record(path).is_file():
        return "checkpoint"
    return None


def training_record(checkpoint: Path) -> Path:
    """The training job's record beside a trained checkpoint (``cnn.pt`` -> ``cnn.train.json``), which holds the
    checkpoint's ``checkpoint_sha256``."""
    return checkpoint.with_suffix(".train.json")


def _temporary(name: str) -> bool:
    """A name :func:`salbench.store.atomic_path` gives a write in progress (or of a killed writer)."""
    return name.startswith(".") and _TMP_MARK in name


def check_store(path: Path, block_items: int = BLOCK_ITEMS) -> None:
    """Raise :class:`StoreError` unless the store's item chunks (naming the ones that differ) and its whole content
    match the checksums recorded when it was written; at most ``block_items`` items are in memory at a time."""
    try:
        attrs = zarr.open_group(path, mode="r", zarr_format=3).attrs.asdict()
    except Exception as err:  # noqa: BLE001 - zarr raises many types for missing or damaged metadata
        raise StoreError(f"store {path} cannot be read ({type(err).__name__}: {err})") from err
    recorded = attrs.get(CHUNK_CHECKSUMS_ATTR)
    if recorded is None:  # no item dimension: read and checked whole
        open_store(path)
        return
    size, count = int(recorded["size"]), int(recorded["items"])
    try:
        actual = store_size(path)
    except ValueError as err:
        raise StoreError(f"store {path} cannot be read ({err})") from err
    if actual != count:
        raise StoreError(f"store {path} holds {actual} items; its {CHUNK_CHECKSUMS_ATTR} records {count}")
    step = size * max(1, block_items // size)
    for start in range(0, max(count, 1), step):
        open_store(path, items=(start, min(start + step, count)))  # checks those item chunks
    if count <= step:
        open_store(path)  # checks content_sha256 (whatever the position of the item dimension)
        return
    try:
        content = stored_checksum(path, size)
    except Exception as err:  # noqa: BLE001 - a chunk that cannot be decoded
        raise StoreError(f"store {path} cannot be read ({type(err).__name__}: {err})") from err
    if content != attrs.get(CHECKSUM_ATTR):
        raise StoreError(f"store {path} fails its checksum: recorded {attrs.get(CHECKSUM_ATTR)}, content {content}")


def check_checkpoint(path: Path) -> None:
    """Raise :class:`StoreError` unless the checkpoint's sha256 is the one its training record holds."""
    record = training_record(path)
    try:
        recorded = json.loads(record.read_text())["checkpoint_sha256"]
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise StoreError(f"training record {record} cannot be read ({type(err).__name__}: {err})") from err
    actual = file_sha256(path)
    if actual != recorded:
        raise StoreError(f"checkpoint {path} fails its checksum: {record} records {recorded}, the file has {actual}")


def check(kind: str, path: Path) -> Finding:
    """Check one store, table or checkpoint."""
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=SNAKEMAKE_MARK_WARNING)
            {"store": check_store, "table": read_table, "checkpoint": check_checkpoint}[kind](path)
    except StoreError as err:
        return Finding(path, kind, str(err))
    except (KeyError, TypeError, ValueError) as err:  # recorded checksums that are not what salbench writes
        return Finding(path, kind, f"{kind} {path} cannot be checked ({type(err).__name__}: {err})")
    return Finding(path, kind)


def removal_target(path: Path, root: Path) -> Path:
    """What to remove so that the next run redoes a damaged ``path``: the outermost folder between ``root`` and
    ``path`` that is a job's declared output (it holds :data:`DIRECTORY_OUTPUT_MARK`), else ``path`` itself."""
    root = root.resolve()
    for folder in reversed(path.parents):  # outermost first
        resolved = folder.resolve()
        if root in resolved.parents and (folder / DIRECTORY_OUTPUT_MARK).exists():
            return folder
    return path


def remove(path: Path) -> None:
    """Remove a store or output folder, or a table or checkpoint (a file)."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)


def verify(roots: list[Path], remove_damaged: bool = False, echo: Callable[[str], None] = print) -> list[Finding]:
    """Check every store, table and checkpoint under ``roots``, ``echo`` a line per damaged one and a summary; with
    ``remove_damaged``, remove each damaged result (:func:`removal_target`). Returns the findings."""
    findings = []
    for root in roots:
        if not root.exists():
            raise FileNotFoundError(f"{root} does not exist")
        for kind, path in artifacts(root):
            finding = check(kind, path)
            findings.append(finding)
            if finding.error is None:
                continue
            echo(f"DAMAGED {path}: {finding.error}")
            if remove_damaged:
                target = removal_target(path, root)
                remove(target)
                echo(f"removed {target}")
    damaged = [f for f in findings if f.error]
    counts = {kind: sum(f.kind == kind for f in findings) for kind in ("store", "table", "checkpoint")}
    checked = f"{counts['store']} stores, {counts['table']} tables and {counts['checkpoint']} checkpoints"
    echo(f"checked {checked} under {', '.join(map(str, roots))}: "
         + (f"{len(damaged)} damaged" if damaged else "all match their checksums"))
    if damaged:
        echo("run the same snakemake command again to redo them" if remove_damaged else
             "`salbench verify --remove` removes them; the next run of the workflow then redoes them")
    return findings
