"""The report page: one static, self-contained HTML document (inline CSS, relative links, no scripts)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from html import escape
from typing import Any, Iterable

import pandas as pd

from .agreement import render as implementation_html
from .claims import render as claims_html
from .curves import render as curves_html
from .fidelity import ANCHOR as FIDELITY_ANCHOR
from .fidelity import render as fidelity_html
from .grid_examples import ANCHOR as GRID_ANCHOR
from .grid_examples import render as grid_examples_html
from .layerwise import NOT_RUN as LAYERWISE_NOT_RUN
from .meta import ANCHOR as META_ANCHOR
from .meta import render as meta_html
from .ranks import fmt_rank
from .sanity import render as sanity_html

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
.scroll{overflow-x:auto}.board td.num{line-height:1.25;font-size:.92em}.rank{color:#335;font-size:.85em}
.explain{background:#f6f8fb;border-left:3px solid #9ab;padding:.4em .8em;margin:.6em 0}
table.claims{font-size:.85em}table.claims td:first-child{min-width:15em}table.claims td.pub{max-width:13em;overflow-wrap:anywhere}
""".strip()
WEAK_MARK = "\u25bd"
#: (anchor, title) of the page's sections, in page order, for the navigation
SECTIONS = (("overview", "Overview"), ("leaderboard", "Leaderboard"), ("ranks", "Ranks"),
            ("agreement", "Rank agreement"), ("sanity", "Sanity checks"), (META_ANCHOR, "How far to trust each metric"),
            ("claims", "Published claims"),
            ("figure", "Metrics figure"), ("curves", "Deletion and insertion curves"), ("examples", "Example maps"),
            ("galleries", "Best and worst items"),
            (GRID_ANCHOR, "Grid localisation examples"),
            ("layerwise", "Layer-wise explanations"), ("implementation-agreement", "Implementation agreement"),
            (FIDELITY_ANCHOR, "Methods: fidelity to the authors' code"))


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
    ranks: pd.DataFrame
    families: dict[str, str]
    metrics: list[str]
    metrics_png: str
    metrics_svg: str
    summary_csv: str
    ranks_csv: str
    ranks_png: str
    ranks_svg: str
    agreement_csv: str
    agreement_png: str
    agreement_svg: str
    examples: dict[tuple[str, str], str]
    n_examples: int
    sanity: Any = None  # a report.sanity.SanitySection, or None when no checks ran
    claims: Any = None  # a report.claims.ClaimsSection, or None when there are no claims
    galleries: dict[tuple[str, str], str] = field(default_factory=dict)
    gallery_metric: str | None = None
    layerwise: str = ""  # HTML of report.layerwise.section; its NOT_RUN stub when empty
    implementation: Any = None  # a report.agreement.Section, or None when no library variant ran
    skipped: list[tuple[str, str, str, str]] = field(default_factory=list)  # (dataset, model, metric, reason)
    curves: Any = None  # a report.curves.CurvesSection, or None when no curves tables were given
    grid_examples: Any = None  # a report.grid_examples.GridSection, or None without grid localisation
    fidelity: Any = None  # a report.fidelity.FidelitySection, or None without docs/fidelity.md
    meta: Any = None  # a report.meta.MetaSection, or None when no metric was meta-evaluated


def render(page: Page) -> str:
    """The whole HTML document for ``page``."""
    pairs = sorted(set(zip(page.summary["dataset"], page.summary["model"])) | set(page.examples))
    body = "\n".join([
        f"<h1>salbench report: {escape(page.study)}</h1>",
        _nav(pairs),
        _overview(page),
        _leaderboard(page, pairs),
        _ranks(page),
        _agreement(page),
        sanity_html(page.sanity, page.methods, page.controls, fmt),
        meta_html(page.meta, fmt),
        claims_html(page.claims, fmt),
        _figure(page),
        _examples(page, pairs),
        _galleries(page, pairs),
        grid_examples_html(page.grid_examples),
        page.layerwise or LAYERWISE_NOT_RUN,
        implementation_html(page.implementation, fmt),
        fidelity_html(page.fidelity, page.methods),
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
    sections = "".join(f'<li><a href="#{anchor}">{escape(title)}</a></li>' for anchor, title in SECTIONS)
    return f"<nav><ul>{sections}{links}</ul></nav>"


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
    info = _table(
        ["metric", "family", "aggregate", "better", "description"],
        [[escape(m), escape(page.families[m]), escape(page.metric_info[m]["aggregate"]),
          "higher" if page.metric_info[m]["higher_is_better"] else "lower",
          escape(page.metric_info[m].get("description", ""))] for m in page.metrics])
    controls = ", ".join(f"<code>{escape(c)}</code>" for c in sorted(page.controls)) or "none in this study"
    parts = [
        '<section id="leaderboard">', "<h2>Leaderboard</h2>",
        '<div class="explain"><p><strong>What it shows.</strong> One table per data set, model and metric family '
        "(localisation against ground-truth masks, faithfulness to the model under perturbation, complexity of the "
        "map). Each cell is the metric's aggregate over scorable items with its 95% bootstrap interval in brackets "
        "(items resampled with replacement, then aggregated as the metric prescribes: <em>mean</em> over items, or "
        "<em>class_mean</em>, the mean over target classes of the per-class mean, as in the TorchRay pointing "
        "game). Items a metric cannot score are excluded and counted.</p>"
        "<p><strong>Ranks.</strong> Below each value: the method's rank among all methods on that metric (1 = best, "
        "&uarr;/&darr; in the header says whether higher or lower values are better; ties share the average rank) "
        "and its 95% bootstrap interval. The rank bootstrap is paired: each resample draws the items once and every "
        "method is scored on the same draw, so the interval says how often the ordering would change with another "
        "sample of items; hover a cell for the mean rank and the share of resamples in which the method is best. "
        "Rows are sorted by <em>mean rank</em> over the family's metrics.</p>"
        "<p><strong>How to read it.</strong> Two methods whose rank intervals overlap are not reliably ordered by "
        "this study. <strong>Bold</strong>: best value of the column.</p></div>",
        info,
        f"<p><strong>Control baselines</strong> ({controls}, tagged <em>control</em>): random maps, a Sobel edge "
        "detector and a map peaked at the image centre do not read the model. A method that does not beat the best "
        f"control on a metric is not explaining the model on that metric; its cell is marked {WEAK_MARK} (point "
        "estimates compared).</p>",
    ]
    for dataset, model in pairs:
        rows = page.summary[(page.summary["dataset"] == dataset) & (page.summary["model"] == model)]
        ranks = page.ranks[(page.ranks["dataset"] == dataset) & (page.ranks["model"] == model)]
        parts.append(f'<section id="leaderboard-{escape(slug(dataset, model))}">'
                     f"<h3>{escape(dataset)} / {escape(model)}</h3>")
        for family, metrics in _by_family(page.metrics, page.families, set(rows["metric"])):
            parts.append(f'<h4 id="leaderboard-{escape(slug(dataset, model, family))}">{escape(family)}</h4>')
            parts.append(_leaderboard_table(rows, ranks, page.methods, metrics, page.controls))
        parts.append(_skipped_notes([s for s in page.skipped if s[:2] == (dataset, model)]))
        parts.append("</section>")
    parts.append(f'<p>Tables: <a href="{escape(page.summary_csv)}">summary.csv</a> (one row per data set, model, '
                 f'method and metric), <a href="{escape(page.ranks_csv)}">ranks.csv</a> (rank, bootstrap mean rank, '
                 "95% rank interval and share of resamples ranked best).</p>")
    parts.append("</section>")
    return "\n".join(parts)


def _skipped_notes(skipped: list[tuple[str, str, str, str]]) -> str:
    """Leaderboard notes naming each metric the score jobs did not compute on a data set, with the reason."""
    if not skipped:
        return ""
    items = "".join(f"<li>metric <code>{escape(metric)}</code> not computed on {escape(dataset)}: {escape(reason)}</li>"
                    for dataset, _, metric, reason in skipped)
    return f'<div class="skipped-metrics"><p><strong>Notes.</strong></p><ul>{items}</ul></div>'


def _by_family(metrics: list[str], families: dict[str, str], present: set[str]) -> list[tuple[str, list[str]]]:
    """(family, its metrics) in ``metrics`` order, only metrics in ``present``."""
    groups: dict[str, list[str]] = {}
    for metric in metrics:
        if metric in present:
            groups.setdefault(families[metric], []).append(metric)
    return list(groups.items())


def _leaderboard_table(rows: pd.DataFrame, ranks: pd.DataFrame, methods: list[str], metrics: list[str],
                       controls: set[str]) -> str:
    """Methods (rows, by mean rank over ``metrics``) x metrics: value, interval and rank per cell."""
    cells = {(r.method, r.metric): r for r in rows.itertuples()}
    rank_of = {(r.method, r.metric): r for r in ranks.itertuples()}
    board = ranks[ranks["metric"].isin(metrics)].groupby("method")["rank"].mean()
    present = [m for m in methods if any((m, metric) in cells for metric in metrics)]
    present.sort(key=lambda m: (math.isnan(board.get(m, math.nan)), board.get(m, math.nan), m))
    body = []
    for method in present:
        tag = '<span class="tag">control</span>' if method in controls else ""
        body.append([f"{escape(method)}{tag}", f'<td class="num">{fmt_rank(board.get(method, math.nan))}</td>']
                    + [_cell(cells.get((method, metric)), rank_of.get((method, metric))) for metric in metrics])
    higher = rows.drop_duplicates("metric").set_index("metric")["higher_is_better"]
    header = ["method", "mean rank"] + [f"{escape(m)} {'&uarr;' if higher.get(m, True) else '&darr;'}"
                                        for m in metrics]
    return f'<div class="scroll board">{_table(header, body)}</div>'


def _cell(row: Any, rank: Any) -> str:
    if row is None:
        return '<td class="num">&mdash;</td>'
    value = f"{fmt(row.value)}<br><span class=\"ci\">[{fmt(row.ci_low)}, {fmt(row.ci_high)}]</span>"
    if row.best:
        value = f"<strong>{value}</strong>"
    if not pd.isna(row.beats_controls) and not row.beats_controls:
        value = f'<span class="weak" title="does not beat the best control">{WEAK_MARK} {value}</span>'
    nonfinite = int(getattr(row, "n_nonfinite", 0) or 0)
    title = f"{row.n_items} items, {row.n_excluded} excluded, {nonfinite} non-finite, {row.n_classes} classes"
    if rank is not None and not pd.isna(rank.rank):
        value += (f'<br><span class="rank">#{fmt_rank(rank.rank)} '
                  f"[{fmt_rank(rank.rank_low)}, {fmt_rank(rank.rank_high)}]</span>")
        title += (f"; rank {fmt_rank(rank.rank)} of {rank.n_ranked}, bootstrap mean rank {rank.rank_mean:.2f}, "
                  f"95% [{fmt_rank(rank.rank_low)}, {fmt_rank(rank.rank_high)}], "
                  f"best in {rank.p_best:.0%} of resamples")
    if row.n_excluded:
        value += f' <span class="excl">({row.n_excluded} excluded)</span>'
    if nonfinite:
        value += (f' <span class="excl nonfinite" title="items whose map or score is NaN or Inf, left out of the '
                  f'mean">({nonfinite} non-finite)</span>')
    return f'<td class="num" title="{escape(title)}">{value}</td>'


def _ranks(page: Page) -> str:
    return "\n".join([
        '<section id="ranks">', "<h2>Ranks</h2>",
        '<div class="explain"><p><strong>What it shows.</strong> The rank of every method (rows) on every metric '
        "(columns, grouped by family) for each data set and model: 1 = best on that metric, whatever its direction; "
        "shared ranks are averaged. Rows are sorted by mean rank over all metrics; control baselines in grey "
        "italics.</p>"
        "<p><strong>How to read it.</strong> A row that is dark across one family but light across another is a "
        "method that one kind of evaluation favours and another does not. The ranks are point estimates: their "
        "95% bootstrap intervals are in the leaderboard cells and in ranks.csv, and a difference of a few ranks "
        "is often within them.</p></div>",
        f'<img src="{escape(page.ranks_png)}" alt="rank of every method on every metric, per data set and model">',
        f'<p><a href="{escape(page.ranks_svg)}">SVG version</a>; table: <a href="{escape(page.ranks_csv)}">'
        "ranks.csv</a>.</p>",
        "</section>",
    ])


def _agreement(page: Page) -> str:
    return "\n".join([
        '<section id="agreement">', "<h2>Rank agreement between metrics</h2>",
        '<div class="explain"><p><strong>What it shows.</strong> For each data set and model, Kendall\'s tau-b '
        "between the orderings of the methods by every pair of metrics, each metric first oriented so that better "
        "is larger (a lower-is-better metric is negated). Saliency metrics are known to disagree about which method "
        "is best (Tomsett et al., AAAI 2020); this map shows where they do in this study.</p>"
        "<p><strong>How to read it.</strong> +1 (dark red): the two metrics order the methods identically; 0: "
        "unrelated orderings; &minus;1 (dark blue): reversed orderings. Black lines separate the metric families; "
        "high agreement inside a family and low agreement across families means the families measure different "
        "properties, so a single metric's leaderboard should not be read as overall quality. Tau uses every "
        "method with a value under both metrics, the control baselines included.</p></div>",
        f'<img src="{escape(page.agreement_png)}" alt="Kendall tau between the metrics\' method rankings, '
        'per data set and model">',
        f'<p><a href="{escape(page.agreement_svg)}">SVG version</a>; table: '
        f'<a href="{escape(page.agreement_csv)}">rank_agreement.csv</a> (tau, two-sided p-value and number of '
        "methods for every ordered pair of metrics).</p>",
        "</section>",
    ])


def _figure(page: Page) -> str:
    return "\n".join([
        '<section id="figure">', "<h2>Metrics figure</h2>",
        "<p>Value and 95% bootstrap interval per method (rows), metric (columns, grouped by family) and data set "
        "(row facets); colour = model. Control baselines in grey italics. With many metrics the figure is wide: "
        f"open the <a href=\"{escape(page.metrics_png)}\">PNG</a> or the "
        f"<a href=\"{escape(page.metrics_svg)}\">SVG version</a> at full size.</p>",
        f'<img src="{escape(page.metrics_png)}" alt="metric values with 95% intervals per method, metric and model">',
        curves_html(page.curves),
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


def _galleries(page: Page, pairs: list[tuple[str, str]]) -> str:
    parts = ['<section id="galleries">', "<h2>Best and worst items per method</h2>"]
    if not page.galleries:
        return "\n".join([*parts, "<p>No per-item scores to sort by.</p>", "</section>"])
    parts.append(
        '<div class="explain"><p><strong>What it shows.</strong> For every method (rows), the items it scores best '
        f"and worst on <code>{escape(str(page.gallery_metric))}</code> (<code>report.gallery_metric</code>), "
        "each with the method's map over the input in grey (scaled by its own maximum absolute value; signed "
        "maps red positive, blue negative) and the target's mask outlined. Ties are broken by item id.</p>"
        "<p><strong>How to read it.</strong> A method whose worst items look like its best ones is not "
        "separating the objects; one whose worst items share a pattern (small objects, clutter, an image edge) "
        "shows where it fails.</p></div>")
    for dataset, model in pairs:
        src = page.galleries.get((dataset, model))
        if src:
            parts += [f'<h3 id="gallery-{escape(slug(dataset, model))}">{escape(dataset)} / {escape(model)}</h3>',
                      f'<img src="{escape(src)}" alt="best and worst items per method for {escape(dataset)} / '
                      f'{escape(model)}">']
    parts.append("</section>")
    return "\n".join(parts)
