"""The sanity section: verdict matrices, self-test, figures and per-method verdicts from the jobs' tables."""

from __future__ import annotations

import numpy as np
import pandas as pd
import xarray as xr

from salbench.store import write_store, write_table

from ..test_sanity import CONFIG, cascade
from .section_helpers import render, run


def _inputs(tmp_path):
    table = pd.concat([cascade("gradient", 0.1), cascade("edges", 0.0)], ignore_index=True)
    folder = tmp_path / "results" / "shapes" / "cnn" / "sanity"
    tables = [write_table(part, folder / f"{method}.parquet") for method, part in table.groupby("method")]
    stages = np.array(["original", "block1", "block2", "block3"], dtype=object)
    store = write_store(xr.Dataset(
        {"saliency": (("stage", "item", "y", "x"), np.random.default_rng(0).random((4, 1, 8, 8)))},
        coords={"stage": stages, "item": np.array(["i0"], dtype=object)},
        attrs={"method": "gradient", "dataset": "shapes", "model": "cnn", "permuted_train_accuracy": 0.97}),
        folder / "gradient.zarr")
    return {"sanity": tables, "cascades": [store]}


def test_section_shows_untrustworthy_checks_figures_and_each_methods_verdicts(tmp_path):
    config = {**CONFIG, "seed": 0, "report": {"bootstrap": 100}}
    folder, context = run("sanity", tmp_path, config, _inputs(tmp_path))
    (pair,) = context["pairs"]
    assert (pair["dataset"], pair["model"], pair["permuted_accuracy"]) == ("shapes", "cnn", 0.97)
    assert [r["method"] for r in pair["rows"]] == ["gradient", "edges"]  # the control last
    assert (folder / context["curves_png"]).is_file() and (folder / context["stages"][0]["png"]).is_file()
    verdicts = pd.read_csv(folder / context["csv"])
    assert set(verdicts["method"]) == {"gradient", "edges"} and (tmp_path / "tables" / "sanity.parquet").is_file()
    mine = {v["check"]: v for v in context["by_method"]["gradient"]["verdicts"]}
    assert mine["model_sensitivity"]["passed"] and mine["model_sensitivity"]["trustworthy"] is False
    html = render("sanity", context, config)
    assert "&#9888; not trustworthy" in html and "edges: passes \u2717" in html
    assert "not trustworthy: a control passes it" in html and "training accuracy 0.970" in html
    assert 'src="figures/sanity/sanity_cascade.png"' in html and 'href="tables/sanity/sanity.csv"' in html
    assert '<a class="method" href="methods/edges.html">edges</a><span class="tag">control</span>' in html


def test_no_sanity_tables_give_an_empty_section(tmp_path):
    _, context = run("sanity", tmp_path, {**CONFIG, "seed": 0}, {"sanity": [], "cascades": []})
    assert context == {"empty": "No sanity checks ran in this study (config key 'sanity')."}
