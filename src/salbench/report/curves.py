"""The report's deletion/insertion curves: the mean curve per method with a 95% bootstrap band across items.

Reads the curves tables the score jobs write beside their score tables
(``results/{dataset}/{model}/scores/{method}.curves.parquet``: one row per item, curve metric and point of the
curve, see :func:`salbench.jobs.curve_table`). A curve metric's leaderboard value is a reduction of these curves
(deletion and insertion: the trapezoid area under them, Petsiuk et al. BMVC 2018; ROAD: their mean over the
removal percentages, Rong et al. ICML 2022), so the figures show where along the perturbation two methods differ.

The band is a percentile bootstrap over items: each resample draws the items with replacement once and takes
every point's mean over the same draw (whole curves are resampled), seeded per (dataset, model, method, metric)
by the report's seed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from html import escape
from pathlib import Path
from typing import Any, Iterable

import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib import pyplot as plt
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from .figures import RC, _save
from .ranks import resample_weights
from .tables import CI_LEVEL, group_rng, read_tidy

CURVE_DTYPES = {"dataset": str, "model": str, "method": str, "item": str, "target": "int64", "metric": str,
                "step": "int64", "fraction": "float64", "value": "float64"}
CURVE_KEY = ["dataset", "model", "method", "metric"]
SUMMARY_COLUMNS = [*CURVE_KEY, "step", "fraction", "mean", "ci_low", "ci_high", "n_items"]
#: grey levels of the control baselines' dashed curves
CONTROL_GREYS = ("0.35", "0.55", "0.7", "0.2")


@dataclass(frozen=True)
class CurvesSection:
    """What the page shows of the curves; paths relative to the report folder."""

    figures: dict[tuple[str, str], str] = field(default_factory=dict)  # (dataset, model) -> PNG (SVG beside it)
    metrics: list[str] = field(default_factory=list)
    summary_csv: str | None = None


def load_curves(files: Iterable[Path]) -> pd.DataFrame:
    """All curves tables in one frame (checksums verified; empty with the right columns when there are none)."""
    frames = []
    for path in files:
        frame = read_tidy(path, CURVE_DTYPES, "curves")
        if len(frame):
            frames.append(frame[list(CURVE_DTYPES)])
    if not frames:
        return pd.DataFrame({column: pd.Series(dtype=object if kind is str else kind)
                             for column, kind in CURVE_DTYPES.items()})
    curves = pd.concat(frames, ignore_index=True).astype(CURVE_DTYPES)
    duplicated = curves.duplicated([*CURVE_KEY, "item", "step"])
    if duplicated.any():
        first = curves[duplicated].iloc[0]
        raise ValueError(f"item {first['item']!r} has two curves for {first['dataset']}/{first['model']}/"
                         f"{first['method']}/{first['metric']}")
    return curves


def mean_curve(values: np.ndarray, n_boot: int, rng: np.random.Generator,
               level: float = CI_LEVEL) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean ``[S]`` of ``[N, S]`` curves and its percentile-bootstrap interval (items resampled, whole curves)."""
    n = values.shape[0]
    if n == 0:
        nan = np.full(values.shape[1], np.nan)
        return nan, nan, nan
    means = np.concatenate([weights @ values / n for weights in resample_weights(n, n_boot, rng)])
    tail = (1.0 - level) / 2.0
    low, high = np.quantile(means, [tail, 1.0 - tail], axis=0)
    return values.mean(axis=0), low, high


def curve_summary(curves: pd.DataFrame, n_boot: int, seed: int) -> pd.DataFrame:
    """One row per (dataset, model, method, metric, step): the mean over items with its 95% interval.

    Items with a non-finite point (a map that was not finite) are left out of the whole curve; ``n_items``
    counts the items behind the mean.
    """
    rows = []
    for key, group in curves.groupby(CURVE_KEY, sort=True):
        matrix = group.pivot(index="item", columns="step", values="value")
        fractions = group.drop_duplicates("step").set_index("step")["fraction"].reindex(matrix.columns)
        values = matrix.to_numpy(dtype=np.float64)
        values = values[np.isfinite(values).all(axis=1)]
        mean, low, high = mean_curve(values, n_boot, group_rng(seed, (*key, "curves")))
        for k, step in enumerate(matrix.columns):
            rows.append({**dict(zip(CURVE_KEY, key)), "step": int(step), "fraction": float(fractions[step]),
                         "mean": mean[k], "ci_low": low[k], "ci_high": high[k], "n_items": int(values.shape[0])})
    return pd.DataFrame(rows, columns=SUMMARY_COLUMNS)


def curves_figure(summary: pd.DataFrame, metrics: list[str], methods: list[str], controls: set[str],
                  metric_info: dict[str, dict[str, Any]], title: str, path: Path) -> list[Path]:
    """One panel per curve metric (in ``metrics`` order) of one (dataset, model): the mean curve of each method
    (in ``methods`` order) with its band; controls dashed grey. Writes ``path`` as PNG and SVG."""
    shown = [m for m in methods if m in set(summary["method"])]
    models = [m for m in shown if m not in controls]
    palette = dict(zip(models, sns.color_palette("colorblind" if len(models) <= 10 else "husl", len(models))))
    greys = {m: CONTROL_GREYS[k % len(CONTROL_GREYS)] for k, m in enumerate(m for m in shown if m in controls)}
    with plt.rc_context(RC), sns.axes_style("whitegrid"):
        fig = Figure(figsize=(3.4 * len(metrics) + 1.8, 3.0))
        FigureCanvasAgg(fig)
        axes = fig.subplots(1, len(metrics), squeeze=False)[0]
        for ax, metric in zip(axes, metrics):
            rows = summary[summary["metric"] == metric]
            for method in shown:
                line = rows[rows["method"] == method].sort_values("step")
                if line.empty:
                    continue
                control = method in controls
                colour = greys[method] if control else palette[method]
                ax.fill_between(line["fraction"], line["ci_low"], line["ci_high"], color=colour,
                                alpha=0.12 if control else 0.2, linewidth=0)
                ax.plot(line["fraction"], line["mean"], color=colour, linestyle="--" if control else "-",
                        linewidth=1.1 if control else 1.5, marker="." if len(line) < 12 else None,
                        label=f"{method} (control)" if control else method)
            higher = (metric_info.get(metric) or {}).get("higher_is_better")
            better = "" if higher is None else f"\n(area: {'higher' if higher else 'lower'} is better)"
            ax.set_title(f"{metric}{better}", fontsize=9)
            ax.set_xlabel("share of pixels perturbed")
            ax.set_xlim(0, 1)
        axes[0].set_ylabel("target-class response\n(mean over items, 95% band)")
        handles, labels = axes[0].get_legend_handles_labels()
        fig.legend(handles, labels, loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize=7, frameon=False)
        fig.suptitle(title, fontsize=10)
        fig.tight_layout()
        written = _save(fig, path, ("png", "svg"))
    return written


def build_section(summary: pd.DataFrame, metric_order: list[str], methods: list[str], controls: set[str],
                  metric_info: dict[str, dict[str, Any]], folder: Path,
                  summary_csv: str | None = None) -> CurvesSection:
    """Draw one figure per (dataset, model) of :func:`curve_summary`'s ``summary`` into ``folder``
    (``figures/curves_{dataset}_{model}.png`` and ``.svg``); metrics in ``metric_order``, others after by name."""
    present = set(summary["metric"])
    metrics = [m for m in metric_order if m in present] + sorted(present - set(metric_order))
    figures = {}
    for (dataset, model), part in summary.groupby(["dataset", "model"], sort=True):
        shown = [m for m in metrics if m in set(part["metric"])]
        name = f"figures/curves_{dataset}_{model}.png"
        curves_figure(part, shown, methods, controls, metric_info, f"{dataset} / {model}", folder / name)
        figures[(dataset, model)] = name
    return CurvesSection(figures=figures, metrics=metrics, summary_csv=summary_csv if figures else None)


def render(section: CurvesSection | None) -> str:
    """The curves subsection's HTML (heading ``id="curves"``)."""
    parts = ['<h3 id="curves">Deletion and insertion curves</h3>']
    if section is None or not section.figures:
        parts.append("<p>This study scores no curve metric (deletion, insertion or ROAD).</p>")
        return "\n".join(parts)
    names = ", ".join(f"<code>{escape(m)}</code>" for m in section.metrics)
    parts.append(
        '<div class="explain"><p><strong>What it shows.</strong> For each curve metric (' + names + "), the model's "
        "response for the target class as a growing share of pixels is perturbed in the order of each method's map: "
        "the mean over items (line) with its 95% bootstrap band (items resampled). Control baselines are dashed "
        "grey.</p><p><strong>How to read it.</strong> For a good map the deletion curve falls fast (removing its "
        "top pixels first destroys the evidence) and the insertion curve rises fast (its top pixels alone restore "
        "it); ROAD's most-relevant-first curve should fall, its least-relevant-first curve stay high. The "
        "leaderboard's number is the area under each item's curve (ROAD: its mean), averaged over items.</p></div>")
    for (dataset, model), src in sorted(section.figures.items()):
        svg = str(Path(src).with_suffix(".svg"))
        parts.append(f'<h4 id="curves-{escape(dataset)}--{escape(model)}">{escape(dataset)} / {escape(model)}</h4>')
        parts.append(f'<img src="{escape(src)}" alt="mean deletion/insertion curves per method with 95% bands for '
                     f'{escape(dataset)} / {escape(model)}">')
        parts.append(f'<p><a href="{escape(svg)}">SVG version</a></p>')
    if section.summary_csv:
        parts.append(f'<p>Table: <a href="{escape(section.summary_csv)}">{escape(section.summary_csv)}</a> (mean and '
                     "95% interval per data set, model, method, metric and point of the curve).</p>")
    return "\n".join(parts)
