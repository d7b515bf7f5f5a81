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

from pathlib import Path
from typing import Any, Iterable

import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib import pyplot as plt
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from ..stats import CI_LEVEL, group_rng, paired_bootstrap, percentile_interval
from . import interactive
from .figures import RC, _save
from .tables import read_tidy

CURVE_DTYPES = {"dataset": str, "model": str, "method": str, "item": str, "target": "int64", "metric": str,
                "step": "int64", "fraction": "float64", "value": "float64"}
CURVE_KEY = ["dataset", "model", "method", "metric"]
SUMMARY_COLUMNS = [*CURVE_KEY, "step", "fraction", "mean", "ci_low", "ci_high", "n_items"]
#: grey levels of the control baselines' dashed curves
CONTROL_GREYS = ("0.35", "0.55", "0.7", "0.2")
#: most methods (controls aside) in one panel of the static figure: more are split by method family
GROUP_SIZE = 8
X_TITLE = "share of pixels perturbed"
Y_TITLE = "target-class response (mean, 95% band)"


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
    """Mean ``[S]`` of ``[N, S]`` curves and its percentile-bootstrap interval: every point's mean over the same
    item draws (whole curves resampled; :func:`salbench.stats.paired_bootstrap` with the points as columns)."""
    if values.shape[0] == 0:
        nan = np.full(values.shape[1], np.nan)
        return nan, nan, nan
    mean, boot = paired_bootstrap(values.T, None, "mean", n_boot, rng)
    low, high = percentile_interval(boot, level)
    return mean, low, high


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


def metric_title(metric: str, metric_info: dict[str, dict[str, Any]]) -> str:
    """A panel's title: the metric and which way its area is better."""
    higher = (metric_info.get(metric) or {}).get("higher_is_better")
    return metric if higher is None else f"{metric} (area: {'higher' if higher else 'lower'} is better)"


def method_groups(methods: list[str], controls: set[str], families: dict[str, str],
                  size: int = GROUP_SIZE) -> list[list[str]]:
    """The non-control ``methods`` split into panels of at most ``size``: whole families (``families``: method ->
    family) packed in order of first appearance, a family larger than ``size`` split on its own."""
    by_family: dict[str, list[str]] = {}
    for method in methods:
        if method not in controls:
            by_family.setdefault(families.get(method, method), []).append(method)
    groups: list[list[str]] = []
    for members in by_family.values():
        chunks = [members[k:k + size] for k in range(0, len(members), size)]
        if groups and len(chunks) == 1 and len(groups[-1]) + len(members) <= size:
            groups[-1].extend(members)
        else:
            groups.extend(chunks)
    return groups


def _lines(summary: pd.DataFrame, metric: str, methods: list[str]) -> list[tuple[str, pd.DataFrame]]:
    """(method, its rows by step) of ``metric`` for each of ``methods`` that has the curve."""
    rows = summary[summary["metric"] == metric]
    lines = []
    for method in methods:
        line = rows[rows["method"] == method].sort_values("step")
        if not line.empty:
            lines.append((method, line))
    return lines


def interactive_figure(summary: pd.DataFrame, metrics: list[str], methods: list[str], controls: set[str],
                       metric_info: dict[str, dict[str, Any]], title: str = "") -> dict[str, Any]:
    """The interactive figure of one (dataset, model): one panel per curve metric, one legend entry per method
    (toggles it in every panel), hover giving each point's mean and band; the plotly spec for the context."""
    shown = [m for m in methods if m in set(summary["method"])]
    colours = interactive.colour_map(shown, sorted(controls))
    panels = [interactive.Panel(
        title=metric_title(metric, metric_info), x_title=X_TITLE, y_title=Y_TITLE if k == 0 else "",
        x_range=(0.0, 1.0),
        lines=[interactive.Line(name=method, x=line["fraction"], y=line["mean"], low=line["ci_low"],
                                high=line["ci_high"], control=method in controls)
               for method, line in _lines(summary, metric, shown)]) for k, metric in enumerate(metrics)]
    return interactive.line_panels(panels, colours, title)


def curves_figure(summary: pd.DataFrame, metrics: list[str], methods: list[str], controls: set[str],
                  metric_info: dict[str, dict[str, Any]], title: str, path: Path,
                  families: dict[str, str] | None = None) -> list[Path]:
    """The static figure of one (dataset, model) (the fallback of the interactive one, and ``snakemake
    --report``'s): one column per curve metric (in ``metrics`` order), one row per group of at most
    :data:`GROUP_SIZE` methods of :func:`method_groups` (by ``families``), each method's mean curve with its band;
    the controls, dashed grey, in every row for reference. Writes ``path`` as PNG and SVG."""
    shown = [m for m in methods if m in set(summary["method"])]
    shown_controls = [m for m in shown if m in controls]
    groups = method_groups(shown, controls, families or {}) or [[]]
    greys = {m: CONTROL_GREYS[k % len(CONTROL_GREYS)] for k, m in enumerate(shown_controls)}
    with plt.rc_context(RC), sns.axes_style("whitegrid"):
        fig = Figure(figsize=(3.6 * len(metrics) + 2.2, 2.7 * len(groups) + 0.5))
        FigureCanvasAgg(fig)
        axes = fig.subplots(len(groups), len(metrics), squeeze=False, sharex=True, sharey="col")
        for row, group in zip(axes, groups):
            palette = dict(zip(group, sns.color_palette("colorblind", max(len(group), 1))))
            for ax, metric in zip(row, metrics):
                for method, line in _lines(summary, metric, [*group, *shown_controls]):
                    control = method in controls
                    colour = greys[method] if control else palette[method]
                    ax.fill_between(line["fraction"], line["ci_low"], line["ci_high"], color=colour,
                                    alpha=0.12 if control else 0.2, linewidth=0)
                    ax.plot(line["fraction"], line["mean"], color=colour, linestyle="--" if control else "-",
                            linewidth=1.1 if control else 1.5, marker="." if len(line) < 12 else None,
                            label=f"{method} (control)" if control else method)
                ax.set_xlim(0, 1)
            row[-1].legend(loc="center left", bbox_to_anchor=(1.02, 0.5), fontsize=7, frameon=False)
        for ax, metric in zip(axes[0], metrics):
            ax.set_title(metric_title(metric, metric_info).replace(" (", "\n("), fontsize=9)
        for ax in axes[-1]:
            ax.set_xlabel(X_TITLE)
        for ax in axes[:, 0]:
            ax.set_ylabel("target-class response\n(mean over items, 95% band)", fontsize=8)
        fig.suptitle(title, fontsize=10)
        fig.tight_layout()
        written = _save(fig, path, ("png", "svg"))
    return written
