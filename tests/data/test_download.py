"""Verified, resumable, cached downloads against a local HTTP server."""

from __future__ import annotations

import hashlib
import threading

import pytest

from salbench.data.download import ChecksumError, DownloadError, Remote, fetch_file

BODY = bytes(range(256)) * 4096  # 1 MiB
SHA = hashlib.sha256(BODY).hexdigest()

def remote(server, sha: str = SHA) -> Remote:
    server.files["/archive.bin"] = BODY
    return Remote(server.url("archive.bin"), sha, "archive.bin")

def test_downloads_verifies_and_then_reads_the_cache(http_server, tmp_path):
    path = fetch_file(remote(http_server), tmp_path, progress=False)
    assert path == tmp_path / "archive.bin" and path.read_bytes() == BODY
    assert fetch_file(remote(http_server), tmp_path, progress=False) == path
    assert len(http_server.requests) == 1 and not (tmp_path / "archive.bin.part").exists()

def test_a_wrong_hash_names_the_file_and_both_hashes_and_leaves_nothing(http_server, tmp_path):
    wrong = "0" * 64
    with pytest.raises(ChecksumError) as raised:
        fetch_file(remote(http_server, wrong), tmp_path, progress=False)
    message = str(raised.value)
    assert SHA in message and wrong in message and "archive.bin" in message
    assert not (tmp_path / "archive.bin").exists() and not (tmp_path / "archive.bin.part").exists()

def test_a_cached_file_that_changed_is_refused(http_server, tmp_path):
    (tmp_path / "archive.bin").write_bytes(b"tampered")
    with pytest.raises(ChecksumError, match="does not match the pinned"):
        fetch_file(remote(http_server), tmp_path, progress=False)
    assert http_server.requests == []

def test_an_interrupted_download_resumes_from_its_part(http_server, tmp_path):
    (tmp_path / "archive.bin.part").write_bytes(BODY[:300_000])
    path = fetch_file(remote(http_server), tmp_path, progress=False)
    assert path.read_bytes() == BODY
    assert http_server.requests == [("/archive.bin", "bytes=300000-")]

def test_a_part_holding_the_whole_file_is_completed_without_a_body(http_server, tmp_path):
    (tmp_path / "archive.bin.part").write_bytes(BODY)
    assert fetch_file(remote(http_server), tmp_path, progress=False).read_bytes() == BODY

def test_a_server_ignoring_the_range_restarts_the_file(http_server, tmp_path):
    http_server.honour_range = False
    (tmp_path / "archive.bin.part").write_bytes(b"x" * 1000)  # not even a prefix of the file
    assert fetch_file(remote(http_server), tmp_path, progress=False).read_bytes() == BODY

def test_http_errors_name_the_url(http_server, tmp_path):
    with pytest.raises(DownloadError, match=r"missing\.bin: HTTP 404"):
        fetch_file(Remote(http_server.url("missing.bin"), SHA, "missing.bin"), tmp_path, progress=False)

def test_concurrent_fetches_download_once(http_server, tmp_path):
    target = remote(http_server)
    paths, errors = [], []

    def fetch() -> None:
        try:
            paths.append(fetch_file(target, tmp_path, progress=False))
        except Exception as err:  # noqa: BLE001 - reported below
            errors.append(err)

    threads = [threading.Thread(target=fetch) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors and len(set(paths)) == 1 and paths[0].read_bytes() == BODY
    assert len(http_server.requests) == 1
