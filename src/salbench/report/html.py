"""The report page: one static, self-contained HTML document (inline CSS, relative links, no scripts)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from html import escape
from typing import Any, Iterable

import pandas as pd

STYLE = """
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;max-width:1200px;margin:2em auto;padding:0 1em;
color:#222;line-height:1.45}
h1,h2,h3{line-height:1.2}h2{border-bottom:1px solid #ccc;padding-bottom:.2em;margin-top:2em}
table{border-collapse:collapse;margin:.6em 0 1.2em;font-size:.9em}
th,td{border:1px solid #ddd;padding:.25em .6em;text-align:left;vertical-align:top}
th{background:#f3f3f3}td.num{text-align:right;white-space:nowrap;font-variant-numeric:tabular-nums}
.ci{color:#666}.excl{color:#a35a00;font-size:.85em}.weak{color:#888}
.tag{font-size:.75em;color:#555;border:1px solid #aaa;border-radius:3px;padding:0 .3em;margin-left:.4em}
pre{background:#f7f7f7;border:1px solid #ddd;padding:.8em;overflow:auto;font-size:.85em}
img{max-width:100%;height:auto;border:1px solid #eee}nav ul{columns:2}code{font-size:.9em}
""".strip()
WEAK_MARK = "\u25bd"


@dataclass(frozen=True)
class Page:
    """Everything the page shows; paths are relative to the report folder."""

    study: str
    provenance: list[tuple[str, str]]
    runtimes: pd.DataFrame
    runs: pd.DataFrame
    config_yaml: str
    summary: pd.DataFrame
    metric_info: dict[str, dict[str, Any]]
    methods: list[str]
    controls: set[str]
    metrics_png: str
    metrics_svg: str
    summary_csv: str
    examples: dict[tuple[str, str], str]
    n_examples: int


def render(page: Page) -> str:
    """The whole HTML document for ``page``."""
    pairs = sorted(set(zip(page.summary["dataset"], page.summary["model"])) | set(page.examples))
    body = "\n".join([
        f"<h1>salbench report: {escape(page.study)}</h1>",
        _nav(pairs),
        _overview(page),
        _leaderboard(page, pairs),
        _figure(page),
        _examples(page, pairs),
    ])
    return ("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
            "<link rel=\"icon\" href=\"data:,\">\n"
            f"<title>salbench report: {escape(page.study)}</title>\n<style>\n{STYLE}\n</style>\n</head>\n"
            f"<body>\n{body}\n</body>\n</html>\n")


def slug(*names: str) -> str:
    """HTML id for a (dataset, model) pair."""
    return "--".join(names)


def fmt(value: float) -> str:
    """Three decimals for ordinary magnitudes, three significant digits otherwise."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    if value == 0 or 1e-3 <= abs(value) < 1e4:
        return f"{value:.3f}"
    return f"{value:.3g}"


def _table(header: Iterable[str], rows: Iterable[Iterable[str]]) -> str:
    """A table from already escaped cell HTML; a cell starting with ``<td`` is taken as is."""
    head = "".join(f"<th>{h}</th>" for h in header)
    body = "\n".join("<tr>" + "".join(c if c.startswith("<td") else f"<td>{c}</td>" for c in row) + "</tr>"
                     for row in rows)
    return f"<table>\n<thead><tr>{head}</tr></thead>\n<tbody>\n{body}\n</tbody>\n</table>"


def _nav(pairs: list[tuple[str, str]]) -> str:
    links = "".join(f'<li><a href="#leaderboard-{escape(slug(*p))}">leaderboard {escape(p[0])} / {escape(p[1])}</a>'
                    f' · <a href="#examples-{escape(slug(*p))}">examples</a></li>' for p in pairs)
    return ('<nav><ul><li><a href="#overview">Overview</a></li><li><a href="#leaderboard">Leaderboard</a></li>'
            '<li><a href="#figure">Metrics figure</a></li><li><a href="#examples">Example maps</a></li>'
            f"{links}</ul></nav>")


def _overview(page: Page) -> str:
    s = page.summary
    intro = (f"<p>This report compares {len(page.methods)} saliency methods on {s['dataset'].nunique()} data set(s) "
             f"and {s['model'].nunique()} model(s) with {s['metric'].nunique()} metric(s). It was rendered by "
             "salbench from the stored maps and per-item scores of the study; the provenance below is read from "
             "the maps stores' attributes, and the aggregated tables are linked at the end of the leaderboard.</p>")
    prov = _table(["field", "value"], [[escape(k), f"<code>{escape(v)}</code>"] for k, v in page.provenance])
    runtimes = _table(
        ["method", "jobs", "runtime (s, summed)", "devices"],
        [[escape(r.method), f'<td class="num">{r.jobs}</td>', f'<td class="num">{r.runtime_s:.1f}</td>',
          escape(r.devices)] for r in page.runtimes.itertuples()])
    runs = _table(
        ["dataset", "model", "method", "registered", "params", "seed", "device", "runtime (s)", "checkpoint sha256"],
        [[escape(r.dataset), escape(r.model), escape(r.method), escape(r.method_name),
          f"<code>{escape(r.method_params)}</code>",
          escape(str(r.seed)), escape(r.device), f'<td class="num">{r.runtime_s:.1f}</td>',
          f"<code>{escape(r.checkpoint_sha256[:12])}</code>"] for r in page.runs.itertuples()])
    return "\n".join([
        '<section id="overview">', "<h2>Overview</h2>", intro, "<h3>Provenance</h3>", prov,
        "<h3>Runtime per method</h3>", runtimes,
        f"<details><summary>All {len(page.runs)} saliency jobs</summary>\n{runs}\n</details>",
        "<h3>Study config</h3>", f"<pre>{escape(page.config_yaml)}</pre>", "</section>",
    ])


def _leaderboard(page: Page, pairs: list[tuple[str, str]]) -> str:
    metrics = sorted(page.summary["metric"].unique())
    info = _table(
        ["metric", "aggregate", "better", "description"],
        [[escape(m), escape(page.metric_info[m]["aggregate"]),
          "higher" if page.metric_info[m]["higher_is_better"] else "lower",
          escape(page.metric_info[m].get("description", ""))] for m in metrics])
    controls = ", ".join(f"<code>{escape(c)}</code>" for c in sorted(page.controls)) or "none in this study"
    parts = [
        '<section id="leaderboard">', "<h2>Leaderboard</h2>",
        "<p>Each cell is the metric's aggregate over scorable items with a 95% bootstrap interval "
        "(items resampled with replacement, then aggregated as the metric prescribes: <em>mean</em> over items, "
        "or <em>class_mean</em>, the mean over target classes of the per-class mean, as in the TorchRay pointing "
        "game). Items a metric cannot score are excluded and counted. <strong>Bold</strong>: best value of the "
        "column for that data set and model.</p>",
        info,
        f"<p><strong>Control baselines</strong> ({controls}): random maps, a Sobel edge detector and a map "
        "peaked at the image centre do not read the model. A method that does not beat the best control on a "
        f"metric is not explaining the model on that metric; its cell is marked {WEAK_MARK} (point estimates "
        "compared).</p>",
    ]
    for dataset, model in pairs:
        rows = page.summary[(page.summary["dataset"] == dataset) & (page.summary["model"] == model)]
        parts.append(f'<section id="leaderboard-{escape(slug(dataset, model))}">'
                     f"<h3>{escape(dataset)} / {escape(model)}</h3>")
        parts.append(_leaderboard_table(rows, page.methods, metrics, page.controls))
        parts.append("</section>")
    parts.append(f'<p>Tables: <a href="{escape(page.summary_csv)}">summary.csv</a> '
                 "(one row per data set, model, method and metric).</p>")
    parts.append("</section>")
    return "\n".join(parts)


def _leaderboard_table(rows: pd.DataFrame, methods: list[str], metrics: list[str], controls: set[str]) -> str:
    cells = {(r.method, r.metric): r for r in rows.itertuples()}
    present = [m for m in methods if any((m, metric) in cells for metric in metrics)]
    body = []
    for method in present:
        tag = '<span class="tag">control</span>' if method in controls else ""
        body.append([f"{escape(method)}{tag}"] + [_cell(cells.get((method, metric))) for metric in metrics])
    higher = rows.drop_duplicates("metric").set_index("metric")["higher_is_better"]
    header = ["method"] + [f"{escape(m)} {'&uarr;' if higher.get(m, True) else '&darr;'}" for m in metrics]
    return _table(header, body)


def _cell(row: Any) -> str:
    if row is None:
        return '<td class="num">&mdash;</td>'
    value = f"{fmt(row.value)} <span class=\"ci\">[{fmt(row.ci_low)}, {fmt(row.ci_high)}]</span>"
    if row.best:
        value = f"<strong>{value}</strong>"
    if not pd.isna(row.beats_controls) and not row.beats_controls:
        value = f'<span class="weak" title="does not beat the best control">{WEAK_MARK} {value}</span>'
    if row.n_excluded:
        value += f' <span class="excl">({row.n_excluded} excluded)</span>'
    title = f"{row.n_items} items, {row.n_excluded} excluded, {row.n_classes} classes"
    return f'<td class="num" title="{escape(title)}">{value}</td>'


def _figure(page: Page) -> str:
    return "\n".join([
        '<section id="figure">', "<h2>Metrics figure</h2>",
        "<p>Value and 95% bootstrap interval per method (rows), metric (columns) and data set (row facets); colour "
        f"= model. Control baselines in grey italics. <a href=\"{escape(page.metrics_svg)}\">SVG version</a>.</p>",
        f'<img src="{escape(page.metrics_png)}" alt="metric values with 95% intervals per method, metric and model">',
        "</section>",
    ])


def _examples(page: Page, pairs: list[tuple[str, str]]) -> str:
    parts = [
        '<section id="examples">', "<h2>Example maps</h2>",
        f"<p>The first {page.n_examples} items of each data set (the same items for every method). First column: the "
        "input with the ground-truth mask of the target class outlined; then one map per method, each scaled by its "
        "own maximum absolute value. Signed maps use a diverging colormap centred at zero (red positive, blue "
        "negative), unsigned maps a sequential one.</p>",
    ]
    for dataset, model in pairs:
        parts.append(f'<section id="examples-{escape(slug(dataset, model))}">'
                     f"<h3>{escape(dataset)} / {escape(model)}</h3>")
        src = page.examples.get((dataset, model))
        parts.append(f'<img src="{escape(src)}" alt="example maps for {escape(dataset)} / {escape(model)}">'
                     if src else "<p>No maps for this data set and model.</p>")
        parts.append("</section>")
    parts.append("</section>")
    return "\n".join(parts)
