"""Exact (aliased) rasterisation of simple shapes as boolean masks.

Every shape is given by a centre, a circumradius and a rotation in pixel units. A pixel belongs to a
shape when its centre does, so a mask is exactly the set of pixels a painter would fill: no
anti-aliasing, which keeps ground-truth masks exact. Work is confined to the shape's bounding box.
"""

from __future__ import annotations

import numpy as np

_CROSS_ARM = 0.32  # half-width of a cross arm, as a fraction of the circumradius


def _regular(n: int, start: float) -> np.ndarray:
    angles = start + 2 * np.pi * np.arange(n) / n
    return np.stack([np.cos(angles), np.sin(angles)], axis=1)


def _star(points: int, inner: float) -> np.ndarray:
    angles = -np.pi / 2 + np.pi * np.arange(2 * points) / points
    radii = np.where(np.arange(2 * points) % 2 == 0, 1.0, inner)
    return np.stack([radii * np.cos(angles), radii * np.sin(angles)], axis=1)


def _cross(arm: float) -> np.ndarray:
    a, w = np.sqrt(1 - arm**2), arm  # arm tips lie on the unit circle
    quarter = [(a, -w), (a, w), (w, w)]  # counter-clockwise from the right arm
    outline = []
    for k in range(4):  # rotate the quarter outline by k * 90 degrees
        c, s = np.cos(k * np.pi / 2), np.sin(k * np.pi / 2)
        outline += [(c * x - s * y, s * x + c * y) for x, y in quarter]
    return np.asarray(outline)


#: unit-circumradius outlines of the polygonal kinds, as (x, y) vertices before rotation
POLYGONS: dict[str, np.ndarray] = {
    "square": _regular(4, np.pi / 4),
    "triangle": _regular(3, -np.pi / 2),
    "star": _star(5, 0.42),
    "cross": _cross(_CROSS_ARM),
}

#: (outer, inner) radius fractions of the round kinds
DISCS: dict[str, tuple[float, float]] = {"circle": (0.9, 0.0), "ring": (1.0, 0.58)}


def _box(size: int, cx: float, cy: float, radius: float) -> tuple[slice, slice, np.ndarray, np.ndarray]:
    """Bounding-box slices of a circle and the pixel-centre coordinates inside it."""
    y0, y1 = max(int(np.floor(cy - radius)), 0), min(int(np.ceil(cy + radius)) + 1, size)
    x0, x1 = max(int(np.floor(cx - radius)), 0), min(int(np.ceil(cx + radius)) + 1, size)
    ys = np.arange(y0, y1, dtype=np.float64)[:, None] + 0.5
    xs = np.arange(x0, x1, dtype=np.float64)[None, :] + 0.5
    return slice(y0, y1), slice(x0, x1), xs, ys


def polygon_mask(size: int, vertices: np.ndarray) -> np.ndarray:
    """Pixels of a ``size`` x ``size`` image whose centres lie inside the polygon (even-odd rule)."""
    cx, cy = vertices.mean(0)
    radius = float(np.max(np.hypot(vertices[:, 0] - cx, vertices[:, 1] - cy))) + 1
    rows, cols, xs, ys = _box(size, cx, cy, radius)
    inside = np.zeros((ys.shape[0], xs.shape[1]), dtype=bool)
    for (xa, ya), (xb, yb) in zip(vertices, np.roll(vertices, -1, axis=0)):
        if ya == yb:
            continue
        crosses = (ya > ys) != (yb > ys)
        x_at = xa + (ys - ya) * (xb - xa) / (yb - ya)
        inside ^= crosses & (xs < x_at)
    mask = np.zeros((size, size), dtype=bool)
    mask[rows, cols] = inside
    return mask


def annulus_mask(size: int, cx: float, cy: float, outer: float, inner: float = 0.0) -> np.ndarray:
    """Pixels whose centres lie within ``inner <= distance <= outer`` of (cx, cy)."""
    rows, cols, xs, ys = _box(size, cx, cy, outer)
    d2 = (xs - cx) ** 2 + (ys - cy) ** 2
    mask = np.zeros((size, size), dtype=bool)
    mask[rows, cols] = (d2 <= outer**2) & (d2 >= inner**2)
    return mask


def place(outline: np.ndarray, cx: float, cy: float, radius: float, angle: float) -> np.ndarray:
    """A unit outline rotated by ``angle``, scaled by ``radius`` and moved to (cx, cy)."""
    c, s = np.cos(angle), np.sin(angle)
    rotation = np.array([[c, -s], [s, c]])
    return outline @ rotation.T * radius + np.array([cx, cy])


def shape_mask(kind: str, size: int, cx: float, cy: float, radius: float, angle: float = 0.0) -> np.ndarray:
    """Mask of one shape of ``kind`` (a key of :data:`POLYGONS` or :data:`DISCS`)."""
    if kind in DISCS:
        outer, inner = DISCS[kind]
        return annulus_mask(size, cx, cy, outer * radius, inner * radius)
    return polygon_mask(size, place(POLYGONS[kind], cx, cy, radius, angle))


def bar_mask(size: int, cx: float, cy: float, length: float, width: float, angle: float) -> np.ndarray:
    """A thin rotated rectangle (the neutral distractor kind)."""
    half = np.array([[-length, -width], [length, -width], [length, width], [-length, width]]) / 2
    return polygon_mask(size, place(half, cx, cy, 1.0, angle))
