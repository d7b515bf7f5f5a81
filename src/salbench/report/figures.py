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

from .mosaic import Cell, Row, map_picture, mosaic_figure, picture  # noqa: E402
from .ranks import fmt_rank  # noqa: E402

DPI = 110
RC = {"svg.hashsalt": "salbench", "svg.fonttype": "none", "font.size": 9}
SAVE = {"dpi": DPI, "bbox_inches": "tight", "facecolor": "white"}
CONTROL_COLOUR = "0.45"
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


def metrics_figure(summary: pd.DataFrame, methods: list[str], controls: set[str], path: Path,
                   metrics: list[str] | None = None) -> list[Path]:
    """Point plot: value with 95% interval per method (y), one facet per metric (columns, in ``metrics``
    order, default sorted) and data set (rows), hue = model. Writes ``path`` as PNG and SVG."""
    present = set(summary["metric"])
    metrics = [m for m in metrics if m in present] if metrics else sorted(present)
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
            _mark_controls(ax.get_yticklabels(), controls)
        for metric, ax in zip(metrics, grid.axes[-1]):
            ax.set_xlabel("higher is better" if direction[metric] else "lower is better")
        grid.set_ylabels("")
        handles = {m: Line2D([], [], marker="o", linestyle="", color=palette[m]) for m in models}
        grid.add_legend(legend_data=handles, title="model")
        written = _save(grid.figure, path, ("png", "svg"))
        plt.close(grid.figure)
    return written


def _mark_controls(labels: list, controls: set[str]) -> None:
    """Grey italics for the tick labels of control baselines."""
    for label in labels:
        if label.get_text() in controls:
            label.set_color(CONTROL_COLOUR)
            label.set_fontstyle("italic")


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
    rows = []
    for i in range(images.shape[0]):
        first = i == 0
        cells = [Cell(picture(images[i]), title=("input + mask" if masks is not None else "input") if first else "",
                      title_style={"fontsize": 8}, mask=None if masks is None else masks[i])]
        cells += [Cell(map_picture(column.maps[i], map_colours(column.maps[i], column.signed)),
                       title=column.method if first else "", title_style=control_style(column.control, 8))
                  for column in columns]
        rows.append(Row(row_labels[i], cells))
    with plt.rc_context(RC):
        _save(mosaic_figure(rows, cell_inches=1.5), path, ("png",))
    return path.with_suffix(".png")


def control_style(control: bool, size: float) -> dict[str, object]:
    """Text keywords of a method's name in ``size`` points: a control in grey italics."""
    return {"fontsize": size, "color": CONTROL_COLOUR if control else "black",
            "fontstyle": "italic" if control else "normal"}


def map_colours(saliency: np.ndarray, signed: bool) -> dict[str, object]:
    """imshow's colormap and limits for a map scaled by its own max |value| (1 for an all-zero or non-finite map):
    signed maps diverge around 0 (red positive, blue negative), unsigned maps run from 0."""
    scale = float(np.nanmax(np.abs(saliency))) if np.isfinite(saliency).any() else 0.0
    scale = scale if scale > 0 else 1.0
    return {"cmap": "RdBu_r", "vmin": -scale, "vmax": scale} if signed else {"cmap": "magma", "vmin": 0.0,
                                                                             "vmax": scale}


def rank_agreement_figure(agreement: pd.DataFrame, metrics: list[str], families: dict[str, str],
                          path: Path) -> list[Path]:
    """Heatmaps of Kendall tau between metrics (rows x columns in ``metrics`` order), one panel per
    (dataset, model): data sets as panel rows, models as panel columns. Lines separate metric families.
    Writes ``path`` as PNG and SVG."""
    datasets = sorted(agreement["dataset"].unique())
    models = sorted(agreement["model"].unique())
    present = [m for m in metrics if m in set(agreement["metric_a"])]
    side = 0.42 * len(present) + 1.6
    with plt.rc_context(RC):
        fig = Figure(figsize=(side * len(models) + 0.8, side * len(datasets)))
        FigureCanvasAgg(fig)
        axes = fig.subplots(len(datasets), len(models), squeeze=False, gridspec_kw={"wspace": 0.35, "hspace": 0.45})
        colorbar = fig.add_axes((0.93, 0.3, 0.012, 0.4))
        for (i, dataset), (j, model) in ((d, m) for d in enumerate(datasets) for m in enumerate(models)):
            rows = agreement[(agreement["dataset"] == dataset) & (agreement["model"] == model)]
            _tau_panel(axes[i, j], rows, present, families, colorbar)
            axes[i, j].set_title(f"{dataset} / {model}", fontsize=10, pad=22)
        colorbar.set_ylabel("Kendall tau (methods' orderings)")
        written = _save(fig, path, ("png", "svg"))
    return written


def _tau_panel(ax: plt.Axes, rows: pd.DataFrame, metrics: list[str], families: dict[str, str],
               colorbar: plt.Axes) -> None:
    """One annotated tau heatmap; an empty panel says so."""
    if rows.empty:
        ax.set_axis_off()
        ax.text(0.5, 0.5, "no scores", ha="center", va="center", transform=ax.transAxes)
        return
    matrix = rows.pivot(index="metric_a", columns="metric_b", values="tau").reindex(index=metrics, columns=metrics)
    sns.heatmap(matrix, ax=ax, cmap="RdBu_r", vmin=-1.0, vmax=1.0, center=0.0, square=True, annot=True, fmt=".2f",
                annot_kws={"fontsize": 6.5}, linewidths=0.4, linecolor="white", cbar_ax=colorbar)
    ax.set_xlabel("")
    ax.set_ylabel("")
    ax.tick_params(axis="x", labelrotation=90, labelsize=8)
    ax.tick_params(axis="y", labelrotation=0, labelsize=8)
    _family_columns(ax, metrics, families, rows_too=True)


def ranks_figure(ranks: pd.DataFrame, metrics: list[str], families: dict[str, str], controls: set[str],
                 path: Path) -> list[Path]:
    """Heatmaps of each method's rank (rows, best mean rank first) per metric (columns, in ``metrics``
    order), one panel per (dataset, model): data sets as panel rows, models as panel columns; 1 = best.
    Writes ``path`` as PNG and SVG."""
    datasets = sorted(ranks["dataset"].unique())
    models = sorted(ranks["model"].unique())
    present = [m for m in metrics if m in set(ranks["metric"])]
    n_methods = int(ranks["method"].nunique())
    worst = float(np.nanmax(ranks["rank"])) if ranks["rank"].notna().any() else 1.0
    width, height = 0.36 * len(present) + 2.6, 0.2 * n_methods + 1.4
    with plt.rc_context(RC):
        fig = Figure(figsize=(width * len(models) + 0.8, height * len(datasets)))
        FigureCanvasAgg(fig)
        axes = fig.subplots(len(datasets), len(models), squeeze=False, gridspec_kw={"wspace": 0.6, "hspace": 0.3})
        colorbar = fig.add_axes((0.93, 0.3, 0.012, 0.4))
        for (i, dataset), (j, model) in ((d, m) for d in enumerate(datasets) for m in enumerate(models)):
            rows = ranks[(ranks["dataset"] == dataset) & (ranks["model"] == model)]
            matrix = rows.pivot(index="method", columns="metric", values="rank").reindex(columns=present)
            matrix = matrix.loc[matrix.mean(axis=1).sort_values(kind="stable").index]
            ax = axes[i, j]
            sns.heatmap(matrix, ax=ax, cmap="viridis_r", vmin=1.0, vmax=max(worst, 2.0), annot=matrix.map(fmt_rank),
                        fmt="",
                        annot_kws={"fontsize": 6}, linewidths=0.3, linecolor="white", cbar_ax=colorbar)
            ax.set_title(f"{dataset} / {model}", fontsize=10, pad=22)
            ax.set_xlabel("")
            ax.set_ylabel("")
            ax.tick_params(axis="x", labelrotation=90, labelsize=8)
            ax.tick_params(axis="y", labelrotation=0, labelsize=7)
            _mark_controls(ax.get_yticklabels(), controls)
            _family_columns(ax, present, families, rows_too=False)
        colorbar.set_ylabel("rank (1 = best)")
        colorbar.invert_yaxis()
        written = _save(fig, path, ("png", "svg"))
    return written


def _family_columns(ax: plt.Axes, metrics: list[str], families: dict[str, str], rows_too: bool) -> None:
    """Lines between the metric families of a heatmap's columns (and rows), family names on top."""
    edges = [0, *(k for k in range(1, len(metrics)) if families[metrics[k]] != families[metrics[k - 1]]),
             len(metrics)]
    for k in edges[1:-1]:
        ax.axvline(k, color="black", linewidth=1.2)
        if rows_too:
            ax.axhline(k, color="black", linewidth=1.2)
    for start, end in zip(edges[:-1], edges[1:]):
        ax.text((start + end) / 2, -0.3, families[metrics[start]], ha="center", va="bottom", fontsize=8,
                fontstyle="italic")
