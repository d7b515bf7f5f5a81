"""The report's metric-trust section: the meta-evaluation jobs' tables rendered with a verdict per metric."""

import re

import pandas as pd

from salbench.metrics.meta_evaluation import META_COLUMNS
from salbench.report.html import fmt
from salbench.report.meta import load_section, render
from salbench.report.resilience import RESILIENCE_COLUMNS
from salbench.store import write_table


def _meta_row(metric: str, kind: str, mc: float, fails_nr: bool, fails_ar: bool) -> dict:
    row = dict.fromkeys(META_COLUMNS, 0.0)
    row.update(metric=metric, kind=kind, higher_is_better=True, IAC_NR=0.6, IAC_AR=0.9, IEC_NR=0.8, IEC_AR=0.7, MC=mc,
               MC_std=0.01, subset_nr_min=7, subset_ar_min=3, fails_nr=fails_nr, fails_ar=fails_ar,
               flagged=fails_nr or fails_ar or mc <= 0.6)
    return {"dataset": "shapes", "model": "cnn", **row}


def _tables(tmp_path):
    meta = pd.DataFrame([_meta_row("deletion", "model", 0.75, False, False),
                         _meta_row("deletion", "input", 0.58, False, False),
                         _meta_row("sparseness", "model", 0.5, False, True)])
    ranks = pd.DataFrame([dict(zip(RESILIENCE_COLUMNS, ["shapes", "cnn", "deletion", m, mrr, order, lo, hi, 0.5,
                                                        0.7, 0.4, 3, 2]))
                          for m, mrr, order, lo, hi in (("gradient", 1.5, 1, 1, 2), ("gradcam", 1.5, 2, 1, 2))])
    folder = tmp_path / "results" / "shapes" / "cnn" / "meta"
    return [write_table(meta, folder / "meta_evaluation.parquet"), write_table(ranks, folder / "resilience.parquet")]


def _row(html: str, metric: str, kind: str) -> str:
    """The table row of (metric, kind)."""
    (row,) = re.findall(rf"<tr><td><code>{metric}</code></td><td>{kind}</td>.*?</tr>", html)
    return row


def test_each_metric_and_kind_gets_its_components_and_verdict(tmp_path):
    html = render(load_section(_tables(tmp_path)), fmt)
    assert '<section id="metric-trust">' in html and "<h3>shapes / cnn</h3>" in html
    assert _row(html, "deletion", "model").endswith("<td>trustworthy</td></tr>")
    assert "0.750" in _row(html, "deletion", "model") and "7 / 3" in _row(html, "deletion", "model")
    assert "trust with care" in _row(html, "deletion", "input")
    assert "fails adversarial reactivity" in _row(html, "sparseness", "model")


def test_resilient_ranks_show_range_and_concordance(tmp_path):
    html = render(load_section(_tables(tmp_path)), fmt)
    assert "Ranks over the settings of <code>deletion</code> (3 settings; Kendall's W 0.700, mean pairwise tau 0.400)" \
        in html
    assert html.count("1&ndash;2") == 2


def test_no_meta_evaluation_no_section():
    assert load_section([]) is None and "Not run" in render(None, fmt)
