"""Helpers of the annotated-photo data-set tests (VOC, COCO): small JPEGs and cache checks."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np


def jpeg(width: int, height: int, colour: tuple[int, int, int]) -> bytes:
    """A ``width`` x ``height`` JPEG of one colour (high quality, so decoded pixels stay within a few levels)."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (width, height), colour).save(buffer, format="JPEG", quality=95)
    return buffer.getvalue()


def assert_colour(image: np.ndarray, colour: tuple[int, int, int], size: int) -> None:
    """A stored image is ``size`` x ``size`` RGB uint8 and (up to JPEG error) the given flat colour."""
    assert image.shape == (size, size, 3) and image.dtype == np.uint8
    assert np.abs(image.astype(int) - np.asarray(colour)).max() <= 4


def assert_nothing_left(cache: Path, root: Path) -> None:
    """After a failed fetch: no file under its final name or as a part in the cache, no split or manifest."""
    cached = [p.name for p in cache.iterdir() if not p.name.endswith(".lock")] if cache.exists() else []
    assert cached == []
    assert not (root / "manifest.json").exists() and not (root / "eval.npz").exists()
