"""Figures made of many small pictures (inputs, maps, maps over inputs) drawn as one image on one axes.

The report's map grids have up to a thousand cells (the sanity cascade: methods x orders x stages). One matplotlib
axes per cell costs about 20 ms to make and as much again to draw, so such a figure took a minute; here the cells
are coloured with numpy, pasted into one canvas and drawn by one ``imshow``, with titles, row labels, mask outlines
and boxes as text, contours and patches on the same axes (a few seconds). The colours are those of the per-axes
figures: :func:`salbench.report.figures.map_colours` (each map scaled by its own max |value|) and a map laid over
the input in grey at alpha 0.7.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import matplotlib
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

OVERLAY_ALPHA = 0.7
MASK_COLOUR = "#00e676"
#: blank space around each cell, as a fraction of the cell's width or height: between columns, and above a cell
#: for its title
COLUMN_GAP, ROW_GAP = 0.06, 0.28


def coloured(saliency: np.ndarray, cmap: str, vmin: float, vmax: float) -> np.ndarray:
    """``saliency`` [H,W] as RGBA [H,W,4] floats through ``cmap`` over ``[vmin, vmax]`` (non-finite pixels get the
    colormap's 'bad' colour, transparent), as ``imshow`` colours it."""
    colormap = matplotlib.colormaps[cmap]
    scaled = (np.asarray(saliency, dtype=np.float64) - vmin) / (vmax - vmin)
    return colormap(np.ma.masked_invalid(scaled))


def grey(image: np.ndarray) -> np.ndarray:
    """A uint8 image [C,H,W] as RGB [H,W,3] in [0, 1]: its channel mean in grey."""
    level = image.astype(np.float32).mean(axis=0) / 255.0
    return np.repeat(level[..., None], 3, axis=-1)


def picture(image: np.ndarray) -> np.ndarray:
    """A uint8 image [C,H,W] (one or three channels) as RGB [H,W,3] in [0, 1]."""
    rgb = np.moveaxis(image[:3], 0, -1).astype(np.float32) / 255.0
    return np.repeat(rgb, 3, axis=-1) if rgb.shape[-1] == 1 else rgb


def map_picture(saliency: np.ndarray, colours: dict[str, Any], under: np.ndarray | None = None) -> np.ndarray:
    """A map as RGB [H,W,3] with ``colours`` (``map_colours``): alone on white, or over ``under`` (RGB) at alpha
    0.7 (a non-finite pixel shows what is under it)."""
    rgba = coloured(saliency, **colours)
    base = np.ones(rgba.shape[:2] + (3,)) if under is None else under
    alpha = rgba[..., 3:] * (OVERLAY_ALPHA if under is not None else 1.0)
    return rgba[..., :3] * alpha + base * (1.0 - alpha)


@dataclass(frozen=True)
class Cell:
    """One picture of the mosaic: RGB [H,W,3] in [0, 1], a title above it (in ``title_style``, text keywords), and
    what to outline on it (a mask [H,W] as a contour at 0.5, boxes ``(x, y, width, height)`` in its pixel
    coordinates as ``imshow`` places pixel centres at integers; both in ``outline``)."""

    rgb: np.ndarray
    title: str = ""
    title_style: dict[str, Any] = field(default_factory=dict)
    mask: np.ndarray | None = None
    boxes: tuple[tuple[float, float, float, float], ...] = ()
    outline: str = MASK_COLOUR
    outline_width: float = 1.0


@dataclass(frozen=True)
class Row:
    """A row of cells (None: an empty place) with its label on the left, in ``label_style`` (text keywords)."""

    label: str
    cells: list[Cell | None]
    label_style: dict[str, Any] = field(default_factory=dict)


def mosaic_figure(rows: list[Row], cell_inches: float = 1.2, column_widths: list[float] | None = None,
                  title_size: float = 6, label_size: float = 7) -> Figure:
    """One figure of ``rows`` (every cell of the same pixel size): a canvas with the cells, their titles above
    and the row labels on the left. ``column_widths`` (in cells, default 1 each) leaves narrow empty columns
    (e.g. 0.25 between grids). Save it with ``bbox_inches='tight'`` so that the labels are kept."""
    columns = max(len(row.cells) for row in rows)
    widths = column_widths or [1.0] * columns
    first = next(cell for row in rows for cell in row.cells if cell is not None)
    height, width = first.rgb.shape[:2]
    lefts = np.concatenate([[0.0], np.cumsum([w * width * (1 + COLUMN_GAP) for w in widths])])
    row_step = height * (1 + ROW_GAP)
    canvas_w, canvas_h = lefts[-1], row_step * len(rows)
    canvas = np.ones((int(round(canvas_h)), int(round(canvas_w)), 3))
    fig = Figure(figsize=(cell_inches * canvas_w / width, cell_inches * canvas_h / height))
    FigureCanvasAgg(fig)
    ax = fig.add_axes((0, 0, 1, 1))
    ax.set_axis_off()
    placed = []
    for i, row in enumerate(rows):
        top = int(round(i * row_step + height * ROW_GAP))
        for j, cell in enumerate(row.cells):
            if cell is None:
                continue
            if cell.rgb.shape[:2] != (height, width):
                raise ValueError(f"mosaic cells must share one size: {cell.rgb.shape[:2]} vs {(height, width)}")
            left = int(round(lefts[j]))
            canvas[top:top + height, left:left + width] = np.clip(cell.rgb, 0.0, 1.0)
            placed.append((left, top, cell))
        ax.text(-0.08 * width, top + height / 2, row.label, ha="right", va="center",
                **{"fontsize": label_size, **row.label_style})
    ax.imshow(canvas, extent=(0, canvas.shape[1], canvas.shape[0], 0), interpolation="antialiased")
    for left, top, cell in placed:
        if cell.title:
            ax.text(left + width / 2, top - 0.04 * height, cell.title, ha="center", va="bottom",
                    **{"fontsize": title_size, **cell.title_style})
        if cell.mask is not None and cell.mask.any():
            ax.contour(np.arange(width) + left + 0.5, np.arange(height) + top + 0.5, cell.mask.astype(float),
                       levels=[0.5], colors=cell.outline, linewidths=cell.outline_width)
        for x, y, w, h in cell.boxes:
            ax.add_patch(Rectangle((left + x + 0.5, top + y + 0.5), w, h, fill=False, edgecolor=cell.outline,
                                   linewidth=cell.outline_width))
    ax.set_xlim(0, canvas.shape[1])
    ax.set_ylim(canvas.shape[0], 0)
    return fig
