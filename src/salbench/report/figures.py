"""Figures of the report (matplotlib Agg, seaborn): the metrics point plot and the example-map grids.

Output is deterministic: fixed sizes and DPI, no timestamps in the files, a fixed SVG id salt.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402  (after the backend is chosen)
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402
from matplotlib.backends.backend_agg import FigureCanvasAgg  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402

DPI = 110
RC = {"svg.hashsalt": "salbench", "svg.fonttype": "none", "font.size": 9}
SAVE = {"dpi": DPI, "bbox_inches": "tight", "facecolor": "white"}
CONTROL_COLOUR = "0.45"
MASK_COLOUR = "#00e676"
FACET_WIDTH = 3.2  # inches per metric panel


@dataclass(frozen=True)
class MapColumn:
    """One method's maps for the example items: ``maps`` [K,H,W]; ``signed`` picks the colormap."""

    method: str
    maps: np.ndarray
    signed: bool
    control: bool = False


def _save(fig: Figure, path: Path, formats: tuple[str, ...]) -> list[Path]:
    path.parent.mkdir(parents=True, exist_ok=True)
    written = []
    for fmt in formats:
        out = path.with_suffix(f".{fmt}")
        fig.savefig(out, format=fmt, metadata={"Date": None} if fmt == "svg" else {"Software": None}, **SAVE)
        written.append(out)
    return written


def metrics_figure(summary: pd.DataFrame, methods: list[str], controls: set[str], path: Path) -> list[Path]:
    """Point plot: value with 95% interval per method (y), one facet per metric (columns) and data set
    (rows), hue = model. Writes ``path`` as PNG and SVG."""
    metrics = sorted(summary["metric"].unique())
    datasets = sorted(summary["dataset"].unique())
    models = sorted(summary["model"].unique())
    palette = dict(zip(models, sns.color_palette("colorblind", len(models))))
    direction = summary.drop_duplicates("metric").set_index("metric")["higher_is_better"]
    height = 0.3 * len(methods) + 1.0
    with plt.rc_context(RC), sns.axes_style("whitegrid"):
        grid = sns.FacetGrid(summary, row="dataset", col="metric", row_order=datasets, col_order=metrics,
                             sharex="col", sharey=True, height=height, aspect=FACET_WIDTH / height,
                             margin_titles=True, despine=False)
        grid.map_dataframe(_intervals, methods=methods, models=models, palette=palette)
        grid.set_titles(row_template="{row_name}", col_template="{col_name}")
        for ax in grid.axes.flat:
            ax.set_yticks(range(len(methods)), methods)
            ax.set_ylim(len(methods) - 0.5, -0.5)
            for label in ax.get_yticklabels():
                if label.get_text() in controls:
                    label.set_color(CONTROL_COLOUR)
                    label.set_fontstyle("italic")
        for metric, ax in zip(metrics, grid.axes[-1]):
            ax.set_xlabel("higher is better" if direction[metric] else "lower is better")
        grid.set_ylabels("")
        handles = {m: Line2D([], [], marker="o", linestyle="", color=palette[m]) for m in models}
        grid.add_legend(legend_data=handles, title="model")
        written = _save(grid.figure, path, ("png", "svg"))
        plt.close(grid.figure)
    return written


def _intervals(data: pd.DataFrame, *, methods: list[str], models: list[str], palette: dict, **_: object) -> None:
    """Draw one facet: a dodged point with horizontal interval per (method, model)."""
    ax = plt.gca()
    step = 0.6 / max(len(models), 1)
    for j, model in enumerate(models):
        rows = data[data["model"] == model].set_index("method").reindex(methods)
        y = np.arange(len(methods)) + (j - (len(models) - 1) / 2) * step
        err = np.clip([rows["value"] - rows["ci_low"], rows["ci_high"] - rows["value"]], 0, None)
        ax.errorbar(rows["value"], y, xerr=err, fmt="o", markersize=4, capsize=2, linewidth=1.2,
                    color=palette[model])


def example_grid(images: np.ndarray, masks: np.ndarray | None, row_labels: list[str], columns: list[MapColumn],
                 path: Path) -> Path:
    """Grid of K items (rows): the input with its ground-truth mask outline, then one map per method.

    Each map is scaled by its own max |value|: signed maps use a diverging colormap centred at 0,
    unsigned maps a sequential one. ``images`` are uint8 [K,C,H,W].
    """
    k = images.shape[0]
    with plt.rc_context(RC):
        fig = Figure(figsize=(1.5 * (1 + len(columns)), 1.5 * k + 0.4))
        FigureCanvasAgg(fig)
        axes = fig.subplots(k, 1 + len(columns), squeeze=False, gridspec_kw={"wspace": 0.05, "hspace": 0.08})
        for i in range(k):
            _show_input(axes[i, 0], images[i], None if masks is None else masks[i])
            axes[i, 0].set_ylabel(row_labels[i], fontsize=7)
            for j, column in enumerate(columns, start=1):
                _show_map(axes[i, j], column.maps[i], column.signed)
        axes[0, 0].set_title("input + mask" if masks is not None else "input", fontsize=8)
        for j, column in enumerate(columns, start=1):
            axes[0, j].set_title(column.method, fontsize=8, color=CONTROL_COLOUR if column.control else "black",
                                 fontstyle="italic" if column.control else "normal")
        for ax in axes.flat:
            ax.set_xticks([])
            ax.set_yticks([])
        _save(fig, path, ("png",))
    return path.with_suffix(".png")


def _show_input(ax: plt.Axes, image: np.ndarray, mask: np.ndarray | None) -> None:
    picture = np.transpose(image, (1, 2, 0))
    if picture.shape[2] == 1:
        ax.imshow(picture[..., 0], cmap="gray", vmin=0, vmax=255, interpolation="antialiased")
    else:
        ax.imshow(picture[..., :3], interpolation="antialiased")
    if mask is not None and mask.any():
        ax.contour(mask.astype(float), levels=[0.5], colors=MASK_COLOUR, linewidths=1.0)


def _show_map(ax: plt.Axes, saliency: np.ndarray, signed: bool) -> None:
    scale = float(np.nanmax(np.abs(saliency))) if np.isfinite(saliency).any() else 0.0
    scale = scale if scale > 0 else 1.0
    if signed:
        ax.imshow(saliency, cmap="RdBu_r", vmin=-scale, vmax=scale, interpolation="antialiased")
    else:
        ax.imshow(saliency, cmap="magma", vmin=0.0, vmax=scale, interpolation="antialiased")
