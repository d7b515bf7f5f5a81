"""Builders of tiny data-set files for the data tests: tar archives, encoded images, served downloads."""

from __future__ import annotations

import hashlib
import io
import tarfile

import numpy as np
from PIL import Image


def tar_bytes(members: dict[str, bytes], gz: bool = True) -> bytes:
    """A tar (gzip-compressed when ``gz``) holding ``members`` (name -> bytes) in the given order."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz" if gz else "w") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def encode(array: np.ndarray, fmt: str) -> bytes:
    """``array`` (uint8 RGB [H,W,3] or grey [H,W]) as PNG or JPEG bytes (JPEG at quality 100)."""
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format=fmt, **({"quality": 100} if fmt == "JPEG" else {}))
    return buffer.getvalue()


def solid(height: int, width: int, colour: tuple[int, int, int]) -> np.ndarray:
    """A uniform RGB image (JPEG keeps it within a grey level or two)."""
    return np.broadcast_to(np.asarray(colour, np.uint8), (height, width, 3)).copy()


def serve(http_server, path: str, body: bytes) -> tuple[str, str]:
    """Serve ``body`` at ``/path``; ``(url, sha256)``."""
    http_server.files[f"/{path}"] = body
    return http_server.url(path), hashlib.sha256(body).hexdigest()


def rle_encode_string(mask: np.ndarray) -> str:
    """COCO's compressed RLE string of a mask, written independently of the decoder under test."""
    flat = mask.T.reshape(-1).astype(np.uint8)
    runs, value, count = [], 0, 0
    for pixel in flat:
        if pixel != value:
            runs.append(count)
            value, count = pixel, 0
        count += 1
    runs.append(count)
    out = []
    for i, run in enumerate(runs):
        x = run - runs[i - 2] if i > 2 else run
        while True:
            c = x & 0x1F
            x >>= 5
            more = x != -1 if c & 0x10 else x != 0
            out.append(chr((c | (0x20 if more else 0)) + 48))
            if not more:
                break
    return "".join(out)
