"""Interactive figures for the report: plotly figures as JSON in a section's context, drawn in the browser by the
plotly.js bundled with the ``plotly`` package, which the report folder carries once (``assets/plotly.min.js``; no
CDN, so the report opens offline and inside ``snakemake --report``'s archive alike).

A section builds a figure's spec with :func:`line_panels` (or :func:`spec` of any plotly figure), stores it in
its context, and its template draws it with the ``plot`` macro of ``templates/interactive.html.j2``; the assembly
calls :func:`write_assets` once per report folder.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

#: where the report folder holds plotly.js, relative to the folder (method pages prefix ``../``)
ASSET = "assets/plotly.min.js"
#: the plotly configuration every figure gets: no logo, no network (mathjax, topojson), resizes with the page
CONFIG = {"displaylogo": False, "responsive": True, "modeBarButtonsToRemove": ["select2d", "lasso2d"]}
#: colours of the series (many distinct hues; the controls are grey and dashed)
PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf", "#8c564b", "#e377c2", "#bcbd22",
           "#393b79", "#ad494a", "#637939", "#7b4173", "#e7969c", "#3182bd", "#31a354", "#756bb1", "#e6550d",
           "#843c39", "#8ca252", "#6baed6", "#fd8d3c", "#9e9ac8", "#74c476")
CONTROL_GREYS = ("#555555", "#888888", "#aaaaaa", "#333333")
PANEL_HEIGHT = 300
MAX_COLUMNS = 3


def plotly_js() -> Path:
    """The plotly.js bundle shipped with the installed ``plotly`` package."""
    import plotly

    path = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"
    if not path.is_file():
        raise FileNotFoundError(f"plotly {plotly.__version__} ships no {path}; reinstall plotly")
    return path


def write_assets(report_dir: Path) -> Path:
    """Copy plotly.js to ``report_dir/assets/plotly.min.js`` unless an identical copy is there; return its path."""
    source, target = plotly_js(), Path(report_dir) / ASSET
    if not target.is_file() or _sha256(target) != _sha256(source):
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, target)
    return target


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def spec(figure: Any) -> dict[str, Any]:
    """A plotly figure as plain JSON data (``data``, ``layout``, ``config``) for a section's context. The Python
    side's theme (``layout.template``, some 7 kB per figure) is left out: plotly.js draws its plain default."""
    data = json.loads(figure.to_json())
    layout = {k: v for k, v in data["layout"].items() if k != "template"}
    return {"data": data["data"], "layout": layout, "config": dict(CONFIG)}


@dataclass(frozen=True)
class Line:
    """One series of a panel: ``y`` over ``x`` with an optional band (``low``, ``high``). Lines of the same
    ``name`` across panels share one legend entry: clicking it shows or hides the series in every panel."""

    name: str
    x: Sequence[float]
    y: Sequence[float]
    low: Sequence[float] | None = None
    high: Sequence[float] | None = None
    control: bool = False


@dataclass(frozen=True)
class Panel:
    """One small multiple: a title, axis labels and its lines."""

    title: str
    lines: list[Line]
    x_title: str = ""
    y_title: str = ""
    x_range: tuple[float, float] | None = None


def colour_map(names: Sequence[str], controls: Sequence[str] = ()) -> dict[str, str]:
    """A fixed colour per series name, in ``names`` order: ordinary series from :data:`PALETTE`, controls grey."""
    plain = [n for n in names if n not in controls]
    greys = [n for n in names if n in controls]
    return ({n: PALETTE[k % len(PALETTE)] for k, n in enumerate(plain)}
            | {n: CONTROL_GREYS[k % len(CONTROL_GREYS)] for k, n in enumerate(greys)})


def line_panels(panels: list[Panel], colours: dict[str, str], title: str = "",
                hover_format: str = ".3f") -> dict[str, Any]:
    """Small multiples of line panels as one figure's :func:`spec`, one legend entry per series name (toggles it in
    every panel; double-click isolates it), hover giving each point's value and band; controls dashed.

    plotly lays out the panels (once per arrangement); the traces are written as plain data (plotly's per-trace
    validation costs some 0.2 s a figure, which a page per method multiplies)."""
    geometry = tuple((p.title, p.x_title, p.y_title, p.x_range) for p in panels)
    out = {**json.loads(_layout(geometry, title)), "config": dict(CONFIG), "data": []}
    shown: set[str] = set()
    for k, panel in enumerate(panels):
        axes = {"xaxis": f"x{k + 1 if k else ''}", "yaxis": f"y{k + 1 if k else ''}"}
        for line in panel.lines:
            out["data"] += [{**trace, **axes} for trace in _traces(
                line, colours.get(line.name, PALETTE[0]), line.name not in shown, hover_format, panel.x_title or "x")]
            shown.add(line.name)
    return out


@functools.lru_cache(maxsize=32)
def _layout(geometry: tuple[tuple[str, str, str, tuple[float, float] | None], ...], title: str) -> str:
    """The JSON of ``{"layout": ...}`` for panels of ``geometry`` (title, x title, y title, x range each)."""
    from plotly.subplots import make_subplots

    columns = min(MAX_COLUMNS, max(1, len(geometry)))
    rows = math.ceil(len(geometry) / columns)
    figure = make_subplots(rows=rows, cols=columns, subplot_titles=[g[0] for g in geometry],
                           horizontal_spacing=0.08, vertical_spacing=min(0.25, 0.5 / rows))
    for k, (_, x_title, y_title, x_range) in enumerate(geometry):
        row, col = k // columns + 1, k % columns + 1
        figure.update_xaxes(title_text=x_title, range=list(x_range) if x_range else None, row=row, col=col)
        figure.update_yaxes(title_text=y_title, row=row, col=col)
    figure.update_layout(
        title={"text": title, "x": 0.01} if title else None, hovermode="closest",
        height=PANEL_HEIGHT * rows + 90, margin={"l": 60, "r": 20, "t": 70, "b": 50},
        legend={"title": {"text": "click: show/hide; double-click: only this"}, "itemclick": "toggle",
                "itemdoubleclick": "toggleothers", "font": {"size": 11}},
        font={"family": "system-ui, sans-serif", "size": 12})
    return json.dumps({"layout": spec(figure)["layout"]})


def _traces(line: Line, colour: str, legend: bool, hover_format: str, x_title: str) -> list[dict[str, Any]]:
    """The band (two traces, filled between) and the line of one series (plotly scatter traces as data), in one
    legend group; hovering a point shows the series, ``x_title`` and x, and y with its band."""
    x, y = [float(v) for v in line.x], [float(v) for v in line.y]
    common = {"type": "scatter", "name": line.name, "legendgroup": line.name, "x": x}
    traces = []
    if line.low is not None and line.high is not None:
        low, high = [float(v) for v in line.low], [float(v) for v in line.high]
        edge = {**common, "mode": "lines", "line": {"width": 0}, "hoverinfo": "skip", "showlegend": False}
        traces += [{**edge, "y": high},
                   {**edge, "y": low, "fill": "tonexty",
                    "fillcolor": _transparent(colour, 0.12 if line.control else 0.18)}]
        band = f"[%{{customdata[0]:{hover_format}}}, %{{customdata[1]:{hover_format}}}]"
        extra = {"customdata": [[lo, hi] for lo, hi in zip(low, high)],
                 "hovertemplate": f"<b>%{{fullData.name}}</b><br>{x_title} %{{x:.3g}}: %{{y:{hover_format}}} "
                                  f"{band}<extra></extra>"}
    else:
        extra = {"hovertemplate": f"<b>%{{fullData.name}}</b><br>{x_title} %{{x:.3g}}: %{{y:{hover_format}}}"
                                  "<extra></extra>"}
    traces.append({**common, "y": y, "mode": "lines+markers" if len(x) < 12 else "lines", "showlegend": legend,
                   "line": {"color": colour, "dash": "dash" if line.control else "solid",
                            "width": 1.3 if line.control else 1.8}, "marker": {"size": 4}, **extra})
    return traces


def _transparent(colour: str, alpha: float) -> str:
    """``#rrggbb`` as an ``rgba()`` with ``alpha``."""
    r, g, b = (int(colour[i:i + 2], 16) for i in (1, 3, 5))
    return f"rgba({r},{g},{b},{alpha})"
