"""The curves section: the curves table, one interactive figure and one static fallback per (data set, model), and
each method's own curves beside the controls' for its page."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from ..synthetic import CURVE_STEPS, METHODS, MODELS, N_ITEMS, curve_values, make_study
from .section_helpers import render, run


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    kwargs = make_study(tmp_path_factory.mktemp("curves-study")).kwargs
    metrics = {"pointing_game": {"metric": "pointing_game", "params": {}},
               "deletion_auc": {"metric": "deletion", "params": {}}}  # registered metrics (the report reads them)
    return {**kwargs, "config": {**kwargs["config"], "metrics": metrics}}


def test_section_writes_the_table_figures_and_interactive_specs(study, tmp_path):
    folder, context = run("curves", tmp_path, study["config"], {"curves": study["curve_files"]})
    assert context["interactive"] is True and context["metrics"] == ["deletion_auc"]
    assert [(p["dataset"], p["model"]) for p in context["pairs"]] == [("shapes", m) for m in MODELS]
    table = pd.read_csv(folder / context["csv"])
    assert len(table) == CURVE_STEPS * (2 * len(METHODS) - 1)  # the last model's control wrote an empty table
    row = table[(table["model"] == MODELS[0]) & (table["method"] == "gradcam")].sort_values("step")
    np.testing.assert_allclose(row["mean"], curve_values("gradcam", N_ITEMS).mean(axis=0))
    for pair in context["pairs"]:
        assert (folder / pair["png"]).stat().st_size > 5_000 and (folder / pair["svg"]).is_file()
        lines = [t for t in pair["spec"]["data"] if t.get("showlegend") is not False]
        drawn = {t["name"] for t in lines}
        assert drawn == set(table[table["model"] == pair["model"]]["method"])  # one legend entry per method
        dashed = {t["name"] for t in lines if t["line"]["dash"] == "dash"}
        assert dashed == {"random", "edges"} & drawn  # the controls
        gradcam = next(t for t in lines if t["name"] == "gradcam")
        assert "customdata" in gradcam and "%{customdata[0]" in gradcam["hovertemplate"]  # hover shows the band
    # a method's page: its curves and the controls', nothing else
    mine = context["by_method"]["gradient"]["pairs"][0]
    assert {t["name"] for t in mine["spec"]["data"]} == {"gradient", "random", "edges"}
    assert "random" not in context["by_method"] and "edges" not in context["by_method"]


def test_template_draws_each_figure_with_its_fallback(study, tmp_path):
    _, context = run("curves", tmp_path, study["config"], {"curves": study["curve_files"]})
    html = render("curves", context, study["config"])
    for model in MODELS:
        assert f'id="curves-shapes--{model}-figure"' in html
        assert f'href="figures/curves/curves_shapes_{model}.png"' in html  # the static fallback
    assert '<script src="assets/plotly.min.js"></script>' in html
    assert "double-click" in html and 'href="tables/curves/curves.csv"' in html
    data = html[html.index('<script type="application/json"'):]
    spec = json.loads(data[data.index(">") + 1:data.index("</script>")])  # tojson stays valid JSON in the page
    assert spec == context["pairs"][0]["spec"]


def test_no_curve_metric_gives_an_empty_section(study, tmp_path):
    _, context = run("curves", tmp_path, study["config"], {"curves": []})
    assert context == {"empty": "This study scores no curve metric (deletion, insertion or ROAD)."}
