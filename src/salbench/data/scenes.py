"""Random scenes for the synthetic shapes data sets: textured background, distractors, class objects.

A scene paints, in order, a textured background, 0..n distractors of a neutral kind (thin bars and
small dots, never a class shape) kept clear of the class objects, then the class objects themselves
in flat colours chosen to contrast with the background under them. Each object's mask is exactly
the pixels painted with its colour, so ground truth is exact.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .raster import annulus_mask, bar_mask, shape_mask

#: class index -> shape kind drawn for it
KINDS: tuple[str, ...] = ("circle", "square", "triangle", "cross", "ring", "star")

_GAP = 3.0  # minimum free pixels between the bounding circles of any two objects (at 64 px)
_MIN_CONTRAST = 110.0  # minimum RGB distance between an object and the mean background under it
_COLOUR_TRIES = 32
_PLACE_TRIES = 200


@dataclass(frozen=True)
class SceneConfig:
    """Sizes of a scene; lengths are fractions of the image side so scenes scale with ``size``."""

    size: int
    radius_min: float
    radius_max: float
    max_distractors: int


@dataclass(frozen=True)
class Scene:
    """A rendered image with the exact mask and class index of each class object."""

    image: np.ndarray  # uint8 [H, W, 3]
    masks: np.ndarray  # bool [K, H, W], one per class object
    targets: np.ndarray  # int64 [K]


def background(rng: np.random.Generator, size: int) -> np.ndarray:
    """Float RGB texture: a two-colour gradient, low-frequency waves, optional stripes and noise."""
    coords = (np.arange(size, dtype=np.float32) + 0.5) / size
    ys, xs = coords[:, None], coords[None, :]
    angle = rng.uniform(0, 2 * np.pi)
    ramp = np.cos(angle) * xs + np.sin(angle) * ys
    ramp = (ramp - ramp.min()) / (np.ptp(ramp) + 1e-6)
    start, stop = rng.uniform(0, 255, 3), rng.uniform(0, 255, 3)
    layers = [ramp, np.ones_like(ramp)]
    colours = [stop - start, start]
    for _ in range(2):  # smooth blotches
        fx, fy = rng.uniform(-2, 2, 2)
        layers.append(np.sin(2 * np.pi * (fx * xs + fy * ys) + rng.uniform(0, 2 * np.pi)))
        colours.append(rng.uniform(-35, 35, 3))
    if rng.random() < 0.6:  # square-wave stripes of random period and direction
        period = rng.uniform(4, 12) / 64
        theta = rng.uniform(0, np.pi)
        phase = (np.cos(theta) * xs + np.sin(theta) * ys) / period + rng.uniform(0, 1)
        layers.append(np.where(phase % 1.0 < 0.5, 1.0, -1.0).astype(np.float32))
        colours.append(rng.uniform(-45, 45, 3))
    layers.append(rng.standard_normal((size, size), dtype=np.float32))  # grey noise
    colours.append(np.full(3, rng.uniform(4, 12)))
    image = np.stack(layers, axis=-1) @ np.asarray(colours, dtype=np.float32)
    return image + rng.standard_normal((size, size, 3), dtype=np.float32) * 4


def contrasting_colour(rng: np.random.Generator, under: np.ndarray) -> np.ndarray:
    """A random colour at least ``_MIN_CONTRAST`` from the mean of ``under`` (or the farthest of the tries)."""
    mean = under.reshape(-1, 3).mean(0)
    candidates = rng.integers(0, 256, (_COLOUR_TRIES, 3)).astype(np.float64)
    distance = np.linalg.norm(candidates - mean, axis=1)
    good = np.flatnonzero(distance >= _MIN_CONTRAST)
    return candidates[good[0] if good.size else int(np.argmax(distance))]


def _place_objects(rng: np.random.Generator, config: SceneConfig, count: int) -> list[tuple[float, float, float]]:
    """(cx, cy, radius) of ``count`` objects inside the image, bounding circles ``_GAP`` apart."""
    size, gap = config.size, _GAP * config.size / 64
    for _ in range(_PLACE_TRIES):
        placed: list[tuple[float, float, float]] = []
        for _ in range(count):
            radius = rng.uniform(config.radius_min, config.radius_max) * size
            cx, cy = rng.uniform(radius + 1, size - radius - 1, 2)
            if all(np.hypot(cx - x, cy - y) >= radius + r + gap for x, y, r in placed):
                placed.append((cx, cy, radius))
        if len(placed) == count:
            return placed
    raise ValueError(f"cannot place {count} objects of radius <= {config.radius_max} in {size} px")


def _distractor_masks(
    rng: np.random.Generator, config: SceneConfig, objects: list[tuple[float, float, float]]
) -> list[np.ndarray]:
    """Masks of 0..max_distractors thin bars and small dots, each clear of every class object."""
    size, scale = config.size, config.size / 64
    masks = []
    for _ in range(rng.integers(0, config.max_distractors + 1)):
        for _ in range(20):
            cx, cy = rng.uniform(0, size, 2)
            if rng.random() < 0.5:
                length, width = rng.uniform(6, 14) * scale, rng.uniform(1.5, 2.5) * scale
                extent, mask = length / 2 + width, bar_mask(size, cx, cy, length, width, rng.uniform(0, np.pi))
            else:
                radius = rng.uniform(1.2, 2.4) * scale
                extent, mask = radius, annulus_mask(size, cx, cy, radius)
            if mask.any() and all(np.hypot(cx - x, cy - y) >= r + extent + _GAP * scale for x, y, r in objects):
                masks.append(mask)
                break
    return masks


def render_scene(rng: np.random.Generator, config: SceneConfig, targets: np.ndarray) -> Scene:
    """Paint one scene with one class object per entry of ``targets`` (class indices)."""
    objects = _place_objects(rng, config, len(targets))
    image = background(rng, config.size)
    for mask in _distractor_masks(rng, config, objects):
        image[mask] = contrasting_colour(rng, image[mask])
    canvas = np.clip(image, 0, 255)
    masks = np.stack([
        shape_mask(KINDS[t], config.size, cx, cy, radius, rng.uniform(0, 2 * np.pi))
        for t, (cx, cy, radius) in zip(targets, objects)
    ])
    for mask in masks:
        canvas[mask] = contrasting_colour(rng, canvas[mask])
    return Scene(np.rint(canvas).astype(np.uint8), masks, np.asarray(targets, dtype=np.int64))
