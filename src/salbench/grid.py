"""Grid localisation: does a method put a class's attribution on that class's image in a grid of images?

Böhle, Fritz & Schiele, "Convolutional Dynamic Alignment Networks for Interpretable Classifications",
CVPR 2021, Sec. 5.2 (their code: ``interpretability/analyses/localisation.py``, configs "500_3x3" and
"500_2x2"). For every method and model:

1. **Confident items.** The eval items the model classifies correctly (arg max = target) with the target's
   probability above ``min_probability`` (:func:`salbench.models.class_probabilities`: softmax, or the
   per-class sigmoid of BCE-trained models such as CoDA-Nets, whose protocol is sigmoid(logit) > 0.5),
   sorted per class by the target logit, most confident first.
2. **Sampling** (:func:`sample_blocks`, their ``get_sorted_indices``). A legacy numpy generator seeded with
   ``seed`` (their ``np.random.seed(42)`` stream) repeatedly draws ``n*n`` distinct classes among those with
   confident items left and takes each drawn class's next most confident item, until fewer than ``n*n``
   classes have items left. (Their loop also stops when exactly ``n*n`` classes are left; here those still
   make a block. For CIFAR-10 3x3 this only matters after a class runs out, long after 500 grids.)
   **Assembly** (:func:`assemble_grids`, their ``make_multi_image`` loop): grids read the flattened blocks
   in order, passing over a class already in the grid, and each next grid starts one item after the last
   one taken (their offset update), until ``n_grids`` grids are built. With the same model (the same
   confidences) the grids hold the same images as theirs.
3. **Tiling.** Cell ``k`` of a grid is at row ``k // n``, column ``k % n`` (theirs: row ``k % n``, column
   ``k // n``, the transposed placement of the same images; a permutation of cells, kept here because the
   report's examples and item ids use the row-major layout); the grid image is ``n*H x n*W``,
   fed as it is to fully convolutional models with global pooling (as the paper feeds 96 x 96 grids to
   its 32 px network), or, with ``resize``, resized to the model's input size. A model that takes only its
   own input size (a ViT's position embeddings: its spec lacks ``any_input_size``) always gets resized grids
   (:func:`resizes_grids`; the grid store records ``resize``).
4. **Scoring.** For every cell, the method's map for the cell's class on the whole grid (as the method
   returns it, channels already reduced), clamped at 0; score = positive attribution inside the cell /
   total positive attribution (0 when the total is 0). A uniform map scores the chance level ``1/n^2``,
   a map exactly on the cell scores 1. Scores are computed for one batch of (grid, class) pairs at a time;
   the maps of the first few grids are kept for the report's examples (:func:`score_and_keep`).

Published (CIFAR-10, 3 x 3, 500 grids, T=1000 CoDA-Net): CoDA contributions 0.912, Occlusion-9 0.842,
Grad-CAM 0.726, IntGrad 0.155, input x gradient 0.144.
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass, fields
from typing import Any, Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from .methods.base import Method
from .models.base import ModelSpec, class_probabilities

CITATION = "Böhle, Fritz & Schiele, CVPR 2021 (CoDA-Nets), Sec. 5.2"


#: grids whose maps the grid-score job keeps for the report's examples (the first ones; cheap: already computed)
KEPT_GRIDS = 3


class GridError(ValueError):
    """Grids cannot be built as configured (too few classes or confident items, a model that rejects them)."""


class TooFewClassesError(GridError):
    """Fewer than ``n*n`` classes have confidently, correctly classified items: not even one grid."""


@dataclass(frozen=True)
class GridSettings:
    """The ``grid`` section of a study config (meanings and defaults in the config schema)."""

    enabled: bool = False
    n: int = 2
    n_grids: int = 100
    min_probability: float = 0.5
    seed: int = 42
    resize: bool = False
    #: a model with too few confident classes gets zero grids (recorded) instead of an error
    allow_empty: bool = False

    @classmethod
    def from_config(cls, section: Mapping[str, Any] | None) -> "GridSettings":
        """Settings from a validated config's ``grid`` section; a missing section means grids are off."""
        if section is None:
            return cls()
        names = {f.name for f in fields(cls)}
        return cls(**{"enabled": True, **{k: v for k, v in section.items() if k in names}})

    @property
    def cells(self) -> int:
        return self.n * self.n

    @property
    def metric(self) -> str:
        """The metric name of the score tables, e.g. ``grid_localisation_3x3``."""
        return f"grid_localisation_{self.n}x{self.n}"

    @property
    def chance(self) -> float:
        """The score of a map spread evenly over the grid: ``1 / n^2``."""
        return 1.0 / self.cells

    def metric_info(self) -> dict[str, dict[str, Any]]:
        """The report's entry for the grid metric (none when grids are off)."""
        if not self.enabled:
            return {}
        description = (f"share of positive attribution inside the class's own cell of {self.n}x{self.n} grids of "
                       f"confidently classified images of distinct classes (Böhle et al. 2021); chance "
                       f"1/{self.cells} = {self.chance:.3f}, oracle 1")
        return {self.metric: {"aggregate": "mean", "higher_is_better": True, "description": description,
                              "family": "localisation", "chance": self.chance,
                              "params": f"n={self.n}, n_grids={self.n_grids}, min_probability={self.min_probability}, "
                                        f"seed={self.seed}, resize={self.resize}"}}


@dataclass(frozen=True)
class Confidence:
    """Per eval item: the target's logit and probability, and whether the model's arg max is the target."""

    logit: np.ndarray  # [N] float64
    probability: np.ndarray  # [N] float64
    correct: np.ndarray  # [N] bool


@torch.no_grad()
def confidences(model: nn.Module, images: torch.Tensor, targets: torch.Tensor, spec: ModelSpec, batch_size: int,
                device: str | torch.device) -> Confidence:
    """The model's confidence in each item's target (one forward pass per batch; uint8 images scaled per batch)."""
    logits, probabilities, correct = [], [], []
    for start in range(0, images.shape[0], batch_size):
        x = _as_float(images[start : start + batch_size].to(device))
        t = targets[start : start + batch_size].to(device).long()
        out = model(x)
        rows = torch.arange(t.shape[0], device=out.device)
        logits.append(out[rows, t].double().cpu())
        probabilities.append(class_probabilities(out, spec)[rows, t].double().cpu())
        correct.append((out.argmax(dim=1) == t).cpu())
    if not logits:
        return Confidence(np.zeros(0), np.zeros(0), np.zeros(0, dtype=bool))
    return Confidence(torch.cat(logits).numpy(), torch.cat(probabilities).numpy(), torch.cat(correct).numpy())


def confident_order(targets: np.ndarray, confidence: Confidence, min_probability: float) -> dict[int, np.ndarray]:
    """Per class, the indices of its correctly classified items with probability > ``min_probability``,
    most confident (largest target logit) first; ties keep item order. Classes with none are left out."""
    targets = np.asarray(targets)
    keep = confidence.correct & (confidence.probability > min_probability)
    order = {}
    for cls in np.unique(targets[keep]):
        members = np.flatnonzero(keep & (targets == cls))
        order[int(cls)] = members[np.argsort(-confidence.logit[members], kind="stable")]
    return order


def sample_blocks(order: Mapping[int, np.ndarray], n: int, seed: int) -> np.ndarray:
    """The authors' ``get_sorted_indices``: blocks of ``n*n`` items of distinct classes, flattened.

    A legacy numpy generator seeded with ``seed`` (theirs: ``np.random.seed(42)``, then ``np.random.choice``:
    the same stream) repeatedly draws ``n*n`` distinct classes, without replacement, among the classes with
    items left (in class order) and takes each drawn class's next most confident item, until fewer than
    ``n*n`` classes have items left (theirs stops when ``n*n`` are left; the draws up to there are equal).
    """
    cells = n * n
    rng = np.random.RandomState(seed)
    classes = np.array(sorted(order), dtype=np.int64)
    lengths = np.array([len(order[c]) for c in classes.tolist()], dtype=np.int64)
    cursor = np.zeros_like(lengths)
    position = {c: k for k, c in enumerate(classes.tolist())}
    blocks: list[int] = []
    while True:
        available = classes[cursor < lengths]
        if available.size < cells:
            break
        for cls in rng.choice(available, size=cells, replace=False).tolist():
            k = position[cls]
            blocks.append(int(order[cls][cursor[k]]))
            cursor[k] += 1
    return np.asarray(blocks, dtype=np.int64)


def assemble_grids(blocks: np.ndarray, classes: Mapping[int, int], cells: int, n_grids: int) -> list[list[int]]:
    """Up to ``n_grids`` grids read off the flattened blocks as the authors' ``make_multi_image`` loop does.

    A grid takes the next items in block order, passing over an item whose class it already has, and the
    next grid starts one position after the grid's last item (their offset update ``i + offset + 1``): one
    item is left out between grids, so grid ``g`` mostly mixes blocks ``g`` and ``g + 1`` (still distinct
    classes, confidence still decreasing per class). Stops when the blocks run out.
    """
    grids: list[list[int]] = []
    offset = 0
    while len(grids) < n_grids:
        grid: list[int] = []
        seen: set[int] = set()
        i = offset
        while len(grid) < cells and i < len(blocks):
            item = int(blocks[i])
            i += 1
            if classes[item] not in seen:
                grid.append(item)
                seen.add(classes[item])
        if len(grid) < cells:
            break
        grids.append(grid)
        offset = i + 1
    return grids


def sample_grids(order: Mapping[int, np.ndarray], n: int, n_grids: int, seed: int) -> np.ndarray:
    """``[G, n*n]`` item indices of up to ``n_grids`` grids of distinct classes: :func:`sample_blocks`, then
    :func:`assemble_grids` (``interpretability/analyses/localisation.py`` of github.com/moboehle/CoDA-Nets).
    An error when not even one grid can be built."""
    cells = n * n
    classes = {int(item): c for c, items in order.items() for item in np.asarray(items).tolist()}
    grids = assemble_grids(sample_blocks(order, n, seed), classes, cells, n_grids)
    if not grids:
        counts = ", ".join(f"{c}: {len(order[c])}" for c in sorted(order)) or "none"
        raise TooFewClassesError(f"grid.n = {n} needs {cells} classes with confidently and correctly classified items, but "
                        f"only {len(order)} have any (items per class: {counts}); lower grid.n or "
                        f"grid.min_probability, or evaluate more items")
    return np.asarray(grids, dtype=np.int64).reshape(len(grids), cells)


def tile(images: torch.Tensor) -> torch.Tensor:
    """``[G, n*n, C, H, W]`` -> grids ``[G, C, n*H, n*W]``; cell ``k`` at row ``k // n``, column ``k % n``."""
    count, cells, channels, height, width = images.shape
    n = math.isqrt(cells)
    if n * n != cells:
        raise ValueError(f"tile needs a square number of cells, got {cells}")
    return (images.reshape(count, n, n, channels, height, width).permute(0, 3, 1, 4, 2, 5)
            .reshape(count, channels, n * height, n * width))


def resize_grids(grids: torch.Tensor, size: int) -> torch.Tensor:
    """uint8 grids resized to ``size x size`` (bilinear, antialiased), still uint8."""
    resized = F.interpolate(grids.float(), size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    return resized.round_().clamp_(0, 255).to(torch.uint8)


def cell_index(height: int, width: int, n: int, device: str | torch.device = "cpu") -> torch.Tensor:
    """``[H*W]`` cell of each pixel of an ``n x n`` grid image (row-major; pixel ``y`` in row ``y*n // H``)."""
    rows = torch.arange(height, device=device) * n // height
    cols = torch.arange(width, device=device) * n // width
    return (rows[:, None] * n + cols[None, :]).reshape(-1)


def cell_fractions(maps: torch.Tensor, n: int, cells: torch.Tensor | None = None) -> torch.Tensor:
    """``[B, n*n]`` share of each map's positive attribution per cell (float64; all 0 when a map has none)."""
    if cells is None:
        cells = cell_index(maps.shape[-2], maps.shape[-1], n, maps.device)
    positive = maps.detach().reshape(maps.shape[0], -1).double().clamp(min=0)
    mass = torch.zeros(maps.shape[0], n * n, dtype=torch.float64, device=maps.device).index_add_(1, cells, positive)
    total = mass.sum(dim=1, keepdim=True)
    return torch.where(total > 0, mass / total.clamp(min=torch.finfo(torch.float64).tiny), torch.zeros_like(mass))


@dataclass(frozen=True)
class Grids:
    """Grids built from a data store: images as the model sees them and, per cell, the source item."""

    images: torch.Tensor  # [G, C, H', W'] uint8
    items: np.ndarray  # [G, n*n] int64 indices into the source items
    targets: np.ndarray  # [G, n*n] int64 class of each cell
    logits: np.ndarray  # [G, n*n] target logit of each cell's item on its own
    probabilities: np.ndarray  # [G, n*n]
    confident: dict[int, int]  # confident, correct items per class
    reason: str = ""  # why there are no grids (``allow_empty``), else ""

    @property
    def n(self) -> int:
        return math.isqrt(self.items.shape[1])


def build_grids(model: nn.Module, spec: ModelSpec, images: torch.Tensor, targets: torch.Tensor,
                settings: GridSettings, batch_size: int, device: str | torch.device) -> Grids:
    """Grids of confidently, correctly classified ``images`` (uint8 ``[N,C,H,W]``) of distinct classes."""
    confidence = confidences(model, images, targets, spec, batch_size, device)
    order = confident_order(targets.numpy(), confidence, settings.min_probability)
    reason = ""
    try:
        chosen = sample_grids(order, settings.n, settings.n_grids, settings.seed)
    except TooFewClassesError as err:
        if not settings.allow_empty:
            raise
        chosen, reason = np.zeros((0, settings.cells), dtype=np.int64), str(err)
    tiled = tile(images[torch.from_numpy(chosen.reshape(-1))].reshape(*chosen.shape, *images.shape[1:]))
    if resizes_grids(spec, settings):
        tiled = resize_grids(tiled, spec.input_size)
    if len(tiled):
        check_accepts(model, tiled[:1], device)
    return Grids(images=tiled, items=chosen, targets=targets.numpy()[chosen].astype(np.int64),
                 logits=confidence.logit[chosen], probabilities=confidence.probability[chosen],
                 confident={c: len(v) for c, v in order.items()}, reason=reason)


def resizes_grids(spec: ModelSpec, settings: GridSettings) -> bool:
    """Whether the grids are resized to the model's input size: when the config says so, or when the model takes
    no other size (its spec lacks ``any_input_size``)."""
    return settings.resize or "any_input_size" in spec.lacks


@torch.no_grad()
def check_accepts(model: nn.Module, grid: torch.Tensor, device: str | torch.device) -> None:
    """An error suggesting ``grid.resize`` when the model cannot take a grid of this size."""
    try:
        model(_as_float(grid.to(device)))
    except (RuntimeError, AssertionError) as err:  # timm asserts its input size
        raise GridError(f"the model does not accept {grid.shape[-2]}x{grid.shape[-1]} grid images ({err}); set "
                        f"grid.resize: true to resize them to its input size") from err


def score_grids(method: Method, model: nn.Module, grids: torch.Tensor, targets: np.ndarray | torch.Tensor,
                batch_size: int, device: str | torch.device, progress: bool = False) -> np.ndarray:
    """``[G, n*n]`` grid localisation of ``method``: for each (grid, cell), the share of the positive
    attribution for the cell's class that lies in the cell. ``grids`` are uint8 or [0, 1] floats
    ``[G,C,H,W]``; ``batch_size`` (grid, class) pairs go through the method at once."""
    return score_and_keep(method, model, grids, targets, batch_size, device, keep=0, progress=progress)[0]


def score_and_keep(method: Method, model: nn.Module, grids: torch.Tensor, targets: np.ndarray | torch.Tensor,
                   batch_size: int, device: str | torch.device, keep: int = KEPT_GRIDS,
                   progress: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """:func:`score_grids`'s ``[G, n*n]`` scores and the maps it scored for the first ``keep`` grids,
    ``[min(keep, G), n*n, H, W]`` float32 (cell ``k``'s map explains the class of cell ``k``), as the method
    returned them: the report's examples show exactly what was scored, without computing maps again."""
    targets = torch.as_tensor(np.asarray(targets), dtype=torch.long)
    count, cells = targets.shape
    n = math.isqrt(cells)
    index = cell_index(grids.shape[-2], grids.shape[-1], n, device)
    scores = torch.empty(count * cells, dtype=torch.float64)
    kept = torch.zeros(min(max(keep, 0), count) * cells, *grids.shape[-2:], dtype=torch.float32)
    starts = range(0, count * cells, batch_size)
    for start in tqdm(starts, desc=f"{method.name} grids", unit="batch", file=sys.stderr, disable=not progress):
        pairs = torch.arange(start, min(start + batch_size, count * cells))
        grid, cell = pairs // cells, pairs % cells
        x = _as_float(grids[grid].to(device))
        maps = method.attribute(model, x, targets[grid, cell].to(device))
        fractions = cell_fractions(maps, n, index)
        scores[pairs] = fractions[torch.arange(pairs.shape[0], device=fractions.device), cell.to(fractions.device)].cpu()
        stored = pairs < kept.shape[0]
        if stored.any():
            kept[pairs[stored]] = maps.detach()[stored.to(maps.device)].reshape(-1, *kept.shape[1:]).float().cpu()
    return scores.reshape(count, cells).numpy(), kept.reshape(-1, cells, *kept.shape[1:]).numpy()


def cell_ids(grids: Sequence[int], n: int) -> list[str]:
    """Score-table item ids of every (grid, cell), grid-major: ``grid{g:04d}/r{row}c{col}``."""
    return [f"grid{g:04d}/r{k // n}c{k % n}" for g in grids for k in range(n * n)]


def _as_float(x: torch.Tensor) -> torch.Tensor:
    return x.float().div_(255) if x.dtype == torch.uint8 else x
