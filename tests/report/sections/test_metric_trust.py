"""The metric-trust section: the meta-evaluation jobs' tables on the page, each method's resilient ranks."""

from __future__ import annotations

import re

from ..test_meta import _tables
from .section_helpers import render, run

CONFIG = {"study": "t", "methods": {"gradient": {"method": "gradient"}, "gradcam": {"method": "gradcam"}}}


def test_section_shows_components_verdicts_and_resilient_ranks(tmp_path):
    folder, context = run("metric_trust", tmp_path, CONFIG, {"meta": _tables(tmp_path)})
    assert (folder / context["csv"]).is_file() and (folder / context["resilience_csv"]).is_file()
    assert context["by_method"]["gradcam"]["resilience"][0]["mrr_rank"] == 2
    html = render("metric_trust", context, CONFIG)
    (row,) = re.findall(r"<tr><td><code>deletion</code></td><td>model</td>.*?</tr>", html)
    assert row.endswith("<td>trustworthy</td></tr>") and "0.750" in row and "7 / 3" in row
    assert "fails adversarial reactivity" in html
    assert ("Ranks over the settings of <code>deletion</code> (3 settings; Kendall's W 0.700, mean pairwise tau "
            "0.400)") in html
    assert html.count("1&ndash;2") == 2 and 'href="methods/gradcam.html"' in html


def test_no_meta_evaluation_is_an_empty_section(tmp_path):
    _, context = run("metric_trust", tmp_path, CONFIG, {"meta": []})
    assert context["empty"].startswith("Not run")
