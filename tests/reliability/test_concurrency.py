"""Parallel jobs: writers of their own stores in one folder never interfere; writers of the same store leave
one whole store; jobs filling the shared download cache at once download a file once and all see it whole.
(salbench has no model-weight cache: checkpoints are job outputs, written atomically like stores.)"""

from __future__ import annotations

import hashlib
import subprocess
import sys
import time

import numpy as np

from data.conftest import http_server  # noqa: F401 (fixture: the data tests' local HTTP server)
from salbench.store import open_store

from .helpers import child_env, start_store_writer, temporaries


def _expected(seed: int, n: int = 16) -> bytes:
    return np.random.default_rng(seed).random((n, 32, 32), dtype=np.float32).tobytes()


def test_parallel_writers_of_their_own_stores_in_one_folder_do_not_interfere(tmp_path):
    paths = [tmp_path / f"{name}.zarr" for name in ("gradient", "gradcam", "rise")]
    writers = [start_store_writer(path, seed=k, slow_s=0.3) for k, path in enumerate(paths)]
    for writer in writers:
        assert writer.wait(timeout=120) == 0, writer.stderr.read()
    for k, path in enumerate(paths):
        assert open_store(path)["saliency"].values.tobytes() == _expected(k)
        assert temporaries(path) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for p in paths)


def test_parallel_writers_of_the_same_store_leave_one_whole_store(tmp_path):
    path = tmp_path / "m.zarr"
    writers = [start_store_writer(path, seed=k, slow_s=0.2) for k in (5, 6)]
    for writer in writers:
        assert writer.wait(timeout=120) == 0, writer.stderr.read()
    assert open_store(path)["saliency"].values.tobytes() in (_expected(5), _expected(6))  # verifies, one of them
    assert temporaries(path) == []


# Each child imports, waits for the go file (so both ask at once), then fetches; the download is slowed by 1 s
# after it lands so the second child asks while the first one holds the entry's lock.
FETCHER = """
import pathlib, sys, time
import salbench.data.download as download

url, sha, cache, go = sys.argv[1:5]
_download = download._download
def slow(*args, **kwargs):
    _download(*args, **kwargs)
    time.sleep(1.0)
download._download = slow
pathlib.Path(go + "." + str(__import__("os").getpid())).touch()
while not pathlib.Path(go).exists():
    time.sleep(0.01)
print(download.fetch_file(download.Remote(url, sha, "archive.bin"), pathlib.Path(cache), progress=False))
"""


def test_two_jobs_filling_the_download_cache_at_once_download_once(http_server, tmp_path):  # noqa: F811
    body = np.random.default_rng(0).bytes(4 << 20)
    http_server.files["/archive.bin"] = body
    sha = hashlib.sha256(body).hexdigest()
    cache, go = tmp_path / "cache", tmp_path / "go"
    children = [subprocess.Popen([sys.executable, "-c", FETCHER, http_server.url("archive.bin"), sha, str(cache),
                                  str(go)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=child_env())
                for _ in range(2)]
    while len(list(tmp_path.glob("go.*"))) < len(children):  # both imported and waiting
        assert all(c.poll() is None for c in children), [c.communicate()[1][-2000:] for c in children]
        time.sleep(0.02)
    go.touch()
    outputs = [c.communicate(timeout=120) for c in children]
    assert all(c.returncode == 0 for c in children), [err[-2000:] for _, err in outputs]
    assert {out.strip() for out, _ in outputs} == {str(cache / "archive.bin")}
    assert (cache / "archive.bin").read_bytes() == body
    assert http_server.requests == [("/archive.bin", None)]  # one download, no second or resumed request
    assert sorted(p.name for p in cache.iterdir()) == ["archive.bin", "archive.bin.lock"]
