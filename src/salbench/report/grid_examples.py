"""Grid localisation examples of the report (Böhle et al. 2021, CoDA-Nets, Sec. 5.2 and Fig. 6).

The leaderboard gives each method's mean share of positive attribution inside the explained class's cell of
``n x n`` grids; this section shows what that number measures. Per (data set, model), for the first grids,
the grid image and, per method, the map for every cell's class with that cell outlined and the cell's score.
The maps are the ones the grid localisation job scored (its ``grid/{method}.zarr`` store,
:func:`salbench.jobs.grid_score`), not recomputed.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from ..store import open_store
from .figures import RC, _save, control_style, plt
from .galleries import overlay
from .mosaic import Cell, Row, mosaic_figure, picture

#: methods drawn when a study has more (all of them up to this many)
MAX_METHODS = 8
#: registered methods always drawn when present (the paper's method and its strongest post-hoc baselines)
PREFERRED = ("coda_contributions", "gradcam", "gradient")
#: grid panels per figure row at most: 3 grids of 2x2, 1 grid of 3x3
MAX_COLUMNS = 16


@dataclass(frozen=True)
class MethodMaps:
    """One method's kept maps: ``maps`` [G, n*n, H, W] (cell k's map explains cell k's class), ``scores`` [G, n*n]."""

    method: str
    registered: str
    maps: np.ndarray
    scores: np.ndarray
    signed: bool


@dataclass(frozen=True)
class GridExamples:
    """The kept grids of one (data set, model) and every method's maps of them."""

    dataset: str
    model: str
    n: int
    grids: list[int]  # grid numbers of grid.zarr
    images: np.ndarray  # [G, C, H, W] uint8, as the model saw them
    labels: list[list[str]]  # class name of each cell, per grid
    methods: list[MethodMaps]
    n_grids_built: int
    reason: str = ""  # why there are no grids ("" when there are)


def read_stores(paths: list[Path]) -> dict[tuple[str, str], GridExamples]:
    """Per (data set, model), the kept grids and maps of the grid localisation jobs' stores (checksums verified).
    Stores of one pair must come from the same grids."""
    by_pair: dict[tuple[str, str], list[Any]] = {}
    for path in paths:
        ds = open_store(path)
        by_pair.setdefault((str(ds.attrs["dataset"]), str(ds.attrs["model"])), []).append((Path(path), ds))
    out = {}
    for (dataset, model), stores in sorted(by_pair.items()):
        first_path, first = stores[0]
        for path, ds in stores[1:]:
            if (ds.attrs["grid_store_sha256"] != first.attrs["grid_store_sha256"]
                    or not np.array_equal(ds["item"].values, first["item"].values)):
                raise ValueError(f"grid maps store {path} was scored on other grids than {first_path}; rerun the "
                                 "grid localisation jobs of this data set and model")
        classes = list(first.attrs["classes"])
        targets = first["cell_target"].values.astype(int)
        methods = []
        for _, ds in stores:
            maps = ds["saliency"].values.astype(np.float32)
            methods.append(MethodMaps(method=str(ds.attrs["method"]), registered=str(ds.attrs["method_name"]),
                                      maps=maps, scores=ds["score"].values.astype(np.float64),
                                      signed=bool(maps.size and np.nanmin(maps) < 0)))
        out[(dataset, model)] = GridExamples(
            dataset=dataset, model=model, n=int(first.attrs["n"]), grids=[int(g) for g in first["item"].values],
            images=first["image"].values, methods=methods, n_grids_built=int(first.attrs["n_grids_built"]),
            labels=[[classes[t] if 0 <= t < len(classes) else str(t) for t in row] for row in targets],
            reason=str(first.attrs.get("empty_reason", "")))
    return out


def choose_methods(methods: list[MethodMaps], order: list[str], limit: int = MAX_METHODS) -> list[MethodMaps]:
    """All methods (in the report's ``order``) up to ``limit``; with more, the :data:`PREFERRED` ones present,
    then the others in order, implementation variants (``gradcam@captum``) last, ``limit`` in all."""
    rank = {m: i for i, m in enumerate(order)}
    ordered = sorted(methods, key=lambda m: (rank.get(m.method, len(rank)), m.method))
    if len(ordered) <= limit:
        return ordered
    preferred = [m for m in ordered if m.registered in PREFERRED]
    rest = sorted((m for m in ordered if m.registered not in PREFERRED), key=lambda m: "@" in m.registered)
    chosen = {m.method for m in (preferred + rest)[:limit]}
    return [m for m in ordered if m.method in chosen]


def shown_grids(count: int, n: int) -> int:
    """Grids a figure shows: as many as fit :data:`MAX_COLUMNS` panels a row (at least one), at most ``count``."""
    return min(count, max(1, MAX_COLUMNS // (n * n)))


def cell_box(k: int, n: int, height: int, width: int) -> tuple[float, float, float, float]:
    """``(x, y, width, height)`` in imshow coordinates of cell ``k`` (row ``k // n``, column ``k % n``): the
    pixels :func:`salbench.grid.cell_index` assigns to it (pixel ``y`` in row ``y*n // H``)."""

    def span(index: int, size: int) -> tuple[int, int]:
        return -(-index * size // n), -(-(index + 1) * size // n)  # first pixel of the cell, first after it

    (y0, y1), (x0, x1) = span(k // n, height), span(k % n, width)
    return x0 - 0.5, y0 - 0.5, float(x1 - x0), float(y1 - y0)


def figure(examples: GridExamples, methods: list[MethodMaps], controls: set[str], path: Path) -> list[Path]:
    """Rows: the grid, then one per method; columns: the cells of the first grids. Row 0 shows the grid with
    cell k outlined and its class; a method's row shows its map for cell k's class over the grid in grey
    (scaled by the map's own max |value|; red/blue if the method's maps are signed), cell k outlined, and
    the cell's score. Without grids, a figure that says why. Writes PNG and SVG."""
    cells = examples.n * examples.n
    count = shown_grids(len(examples.grids), examples.n)
    with plt.rc_context(RC):
        if count == 0:
            fig = Figure(figsize=(6.0, 1.2))
            FigureCanvasAgg(fig)
            fig.text(0.5, 0.5, f"{examples.dataset} / {examples.model}: no grids were built\n"
                     f"{examples.reason or 'no grid maps kept'}", ha="center", va="center", wrap=True, fontsize=8)
            return _save(fig, path, ("png", "svg"))
        height, width = examples.images.shape[-2:]
        boxes = [(cell_box(k, examples.n, height, width),) for k in range(cells)]
        top = Row("grid", [], {"fontsize": 7})
        rows = [Row(method.method, [], control_style(method.method in controls, 7)) for method in methods]
        for g in range(count):
            image = examples.images[g]
            for k in range(cells):
                top.cells.append(Cell(picture(image), title=f"grid {examples.grids[g]}, cell {k}\n"
                                      f"{examples.labels[g][k]}", boxes=boxes[k], outline_width=1.2))
                for row, method in zip(rows, methods):
                    row.cells.append(Cell(overlay(image, method.maps[g, k], method.signed), boxes=boxes[k],
                                          title=f"{method.scores[g, k]:.2f}", outline_width=1.2))
            if g < count - 1:
                for row in [top, *rows]:
                    row.cells.append(None)  # the narrow gap between grids
        widths = [w for g in range(count) for w in [1.0] * cells + ([0.25] if g < count - 1 else [])]
        return _save(mosaic_figure([top, *rows], cell_inches=1.15, column_widths=widths), path, ("png", "svg"))


def pair_figures(stores: list[Path], order: list[str], controls: set[str], folder: Path) -> list[dict[str, Any]]:
    """Draw one figure per (data set, model) with grid maps stores into ``folder``
    (``figures/grid_examples_{dataset}_{model}.png`` + ``.svg``); per figure its paths relative to ``folder``,
    the methods it shows and a note saying what it shows (or why it has no grids)."""
    out = []
    for (dataset, model), examples in read_stores(list(stores)).items():
        name = f"figures/grid_examples_{dataset}_{model}"
        chosen = choose_methods(examples.methods, order)
        figure(examples, chosen, controls, folder / f"{name}.png")
        shown = shown_grids(len(examples.grids), examples.n)
        if shown:
            left_out = len(examples.methods) - len(chosen)
            note = (f"first {shown} of {examples.n_grids_built} {examples.n}x{examples.n} grids; "
                    f"{len(chosen)} method(s)" + (f" ({left_out} more in the leaderboard)" if left_out else ""))
        else:
            note = f"no grids: {examples.reason or 'no grid maps kept'}"
        out.append({"dataset": dataset, "model": model, "png": f"{name}.png", "svg": f"{name}.svg", "note": note,
                    "methods": [m.method for m in chosen] if shown else []})
    return out
