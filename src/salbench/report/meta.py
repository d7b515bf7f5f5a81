"""The report's section on how far to trust each metric: its meta-evaluation and its resilient ranks.

Reads the tables of the ``meta_evaluate`` jobs (``results/{dataset}/{model}/meta/meta_evaluation.parquet`` and
``resilience.parquet``, written by :mod:`salbench.meta_jobs`): per metric and perturbation kind the MetaQuantus
components (Hedström et al., TMLR 2023) with the benchmark's verdict, and per metric and method the mean
resilience rank over the metric's declared settings (Wickstrøm, Höhne & Hedström 2024).
"""

from __future__ import annotations

from dataclasses import dataclass
from html import escape
from pathlib import Path
from typing import Callable

import pandas as pd

from ..meta_config import COMPONENTS
from ..store import read_table

ANCHOR = "metric-trust"


@dataclass(frozen=True)
class MetaSection:
    """The meta-evaluation rows (one per dataset, model, metric, kind) and resilience rows (per metric, method)."""

    meta: pd.DataFrame
    resilience: pd.DataFrame


def load_section(paths: list[Path]) -> MetaSection | None:
    """The section from the jobs' tables, told apart by their columns (each job writes both; None when no job
    ran)."""
    tables = [read_table(p) for p in paths]
    meta = [t for t in tables if "MC" in t.columns]
    resilience = [t for t in tables if "mrr" in t.columns]
    if not meta:
        return None
    return MetaSection(pd.concat(meta, ignore_index=True),
                       pd.concat(resilience, ignore_index=True) if resilience else pd.DataFrame())


def _verdict(row: pd.Series) -> str:
    failed = [name for name, flag in (("noise resilience", row.fails_nr), ("adversarial reactivity", row.fails_ar))
              if flag]
    if failed:
        return "fails " + " and ".join(failed)
    return "trust with care (MC close to a constant metric's 0.5)" if row.flagged else "trustworthy"


def render(section: MetaSection | None, fmt: Callable[[float], str]) -> str:
    """The section's HTML (a line saying it did not run when no meta-evaluation ran)."""
    if section is None:
        return (f'<section id="{ANCHOR}">\n<h2>How far to trust each metric</h2>\n<p>Not run: the study config has '
                "no <code>meta_evaluation</code> section (the demo's shows how to declare one).</p>\n</section>")
    parts = [f'<section id="{ANCHOR}">', "<h2>How far to trust each metric</h2>",
             '<p class="explain">Each metric is scored again after minor perturbations of the model (every weight '
             "times N(1, &sigma;&sup2;)) or the input (uniform noise) that should not change an explanation's quality "
             "(<em>noise resilience</em>, NR: scores and the methods' order stay put), and after disruptive ones "
             "(<em>adversarial reactivity</em>, AR: scores get worse). IAC: the per-item scores' consistency "
             "(Wilcoxon p, or 1 &minus; p); IEC: the methods' order (NR) or the share of worse scores (AR); MC: their "
             "mean, 1 is ideal and a metric that never changes scores 0.5 (MetaQuantus, Hedström et al. 2023, with "
             "the paper's direction of IEC_AR). |S|: the fewest items whose prediction kept (NR) or changed (AR) "
             "class, which caps IAC.</p>"]
    for (dataset, model), rows in section.meta.groupby(["dataset", "model"], sort=True):
        parts.append(f"<h3>{escape(dataset)} / {escape(model)}</h3>")
        header = ["metric", "perturbed", *COMPONENTS, "MC", "|S| NR / AR", "verdict"]
        body = []
        for row in rows.sort_values(["metric", "kind"]).itertuples():
            cells = [f"<td><code>{escape(row.metric)}</code></td>", f"<td>{escape(row.kind)}</td>"]
            cells += [f'<td class="num">{fmt(getattr(row, c))}</td>' for c in COMPONENTS]
            cells.append(f'<td class="num">{fmt(row.MC)} <span class="ci">&plusmn; {fmt(row.MC_std)}</span></td>')
            cells.append(f'<td class="num">{int(row.subset_nr_min)} / {int(row.subset_ar_min)}</td>')
            cells.append(f"<td>{escape(_verdict(row))}</td>")
            body.append("<tr>" + "".join(cells) + "</tr>")
        head = "".join(f"<th>{escape(h)}</th>" for h in header)
        parts.append(f'<div class="scroll"><table>\n<thead><tr>{head}</tr></thead>\n<tbody>\n'
                     + "\n".join(body) + "\n</tbody>\n</table></div>")
        parts.append(_resilience(section.resilience, dataset, model, fmt))
    parts.append("</section>")
    return "\n".join(parts)


def _resilience(table: pd.DataFrame, dataset: str, model: str, fmt: Callable[[float], str]) -> str:
    """Per metric with a declared grid: each method's mean resilience rank, its rank range, and the rankings'
    concordance (Kendall's W, mean pairwise tau)."""
    if table.empty:
        return ""
    rows = table[(table["dataset"] == dataset) & (table["model"] == model)]
    parts = []
    for metric, group in rows.groupby("metric", sort=True):
        first = group.iloc[0]
        parts.append(f"<h4>Ranks over the settings of <code>{escape(metric)}</code> ({int(first.n_settings)} "
                     f"settings; Kendall's W {fmt(first.kendall_w)}, mean pairwise tau {fmt(first.mean_tau)})</h4>")
        body = "\n".join(
            f"<tr><td><code>{escape(r.method)}</code></td><td class=\"num\">{fmt(r.mrr)}</td>"
            f"<td class=\"num\">{int(r.mrr_rank)}</td><td class=\"num\">{r.rank_min:g}&ndash;{r.rank_max:g}</td>"
            f"<td class=\"num\">{fmt(r.rank_std)}</td></tr>"
            for r in group.sort_values("mrr").itertuples())
        parts.append("<table>\n<thead><tr><th>method</th><th>mean resilience rank</th><th>order</th>"
                     f"<th>rank range</th><th>rank std</th></tr></thead>\n<tbody>\n{body}\n</tbody>\n</table>")
    if not parts:
        return ""
    return ('<p>Rankings that survive the metrics\' own settings (Wickstrøm, Höhne &amp; Hedström 2024): the methods '
            "ranked under every declared setting of a metric (1 = best); a wide range means the metric's settings "
            "decide the order.</p>\n" + "\n".join(parts))
