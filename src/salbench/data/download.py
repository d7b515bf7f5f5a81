"""Verified, resumable downloads into a shared cache.

A file is fetched to ``<cache>/<name>.part``, resumed with an HTTP ``Range`` request when a part is
already there (a killed job loses nothing), checked against its pinned sha256 and only then renamed to
``<cache>/<name>``: a file under its final name is always complete and verified. An exclusive lock per
entry (``<name>.lock``, ``fcntl.flock``) makes jobs that need the same file at once download it once.

The cache is ``resources/downloads`` under the working directory (the workflow's root), or
``$SALBENCH_DOWNLOADS``; point that at a shared folder on a cluster.
"""

from __future__ import annotations

import fcntl
import os
import urllib.error
import urllib.request
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from ..provenance import file_sha256

CACHE_ENV = "SALBENCH_DOWNLOADS"
DEFAULT_CACHE = Path("resources") / "downloads"
CHUNK = 1 << 20


class DownloadError(RuntimeError):
    """A download failed (network, HTTP status); the message names the URL."""


class ChecksumError(DownloadError):
    """A file's sha256 differs from its pinned value; the message names the file and both hashes."""


@dataclass(frozen=True)
class Remote:
    """A file to download: where from, its pinned sha256 and the name it is cached under.

    ``sha256`` is the full 64-digit hex digest, or a prefix of at least 8 digits where only that is published
    (torchvision's weight files are named after the first 8 digits of theirs): then only the prefix is checked.
    """

    url: str
    sha256: str
    name: str


def sha256_matches(actual: str, pinned: str) -> bool:
    """Whether hex digest ``actual`` is the pinned one: equal, or starting with a pinned prefix (>= 8 digits)."""
    pinned = pinned.lower()
    return actual == pinned if len(pinned) >= 64 else len(pinned) >= 8 and actual.startswith(pinned)


def cache_dir() -> Path:
    """The download cache: ``$SALBENCH_DOWNLOADS`` or ``resources/downloads``."""
    return Path(os.environ.get(CACHE_ENV) or DEFAULT_CACHE)


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def fetch_file(remote: Remote, cache: Path | None = None, progress: bool = True, timeout: float = 60.0) -> Path:
    """The verified cached copy of ``remote``, downloading (or resuming) it first when it is not cached."""
    cache = Path(cache) if cache is not None else cache_dir()
    cache.mkdir(parents=True, exist_ok=True)
    final = cache / remote.name
    with _locked(cache / f"{remote.name}.lock"):
        if final.is_file():
            actual = file_sha256(final)
            if not sha256_matches(actual, remote.sha256):
                raise ChecksumError(f"{final}: sha256 {actual} does not match the pinned {remote.sha256}; "
                                    "delete the file to download it again")
            return final
        part = cache / f"{remote.name}.part"
        _download(remote.url, part, timeout, progress)
        actual = file_sha256(part)
        if not sha256_matches(actual, remote.sha256):
            part.unlink()
            raise ChecksumError(f"{remote.url} downloaded to {part}: sha256 {actual}, expected {remote.sha256}; "
                                "the partial file was removed, run again to download it afresh")
        os.replace(part, final)
    return final


def _download(url: str, part: Path, timeout: float, progress: bool) -> None:
    """Append the rest of ``url`` to ``part`` (all of it when the server ignores the range)."""
    from tqdm import tqdm

    offset = part.stat().st_size if part.exists() else 0
    headers = {"User-Agent": "salbench", **({"Range": f"bytes={offset}-"} if offset else {})}
    try:
        response = urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout)
    except urllib.error.HTTPError as err:
        if err.code == 416 and offset:  # nothing left past the part: it holds the whole file
            return
        raise DownloadError(f"{url}: HTTP {err.code} {err.reason}") from None
    except (urllib.error.URLError, OSError) as err:
        raise DownloadError(f"{url}: {getattr(err, 'reason', err)}") from None
    with response:
        if offset and response.status != 206:
            offset = 0  # the server sent the whole file: start over
        length = response.headers.get("Content-Length")
        total = offset + int(length) if length is not None else None
        with open(part, "ab" if offset else "wb") as handle, tqdm(
            total=total, initial=offset, unit="B", unit_scale=True, desc=part.name, disable=not progress
        ) as bar:
            while block := response.read(CHUNK):
                handle.write(block)
                bar.update(len(block))
