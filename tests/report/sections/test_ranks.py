"""The ranks section: the rank table, one heatmap per data set and model, and mean ranks per metric family."""

import pandas as pd
import pytest

from salbench.report.assemble import load_context
from salbench.store import read_table

from ..synthetic import METHODS, MODELS


def test_rank_table_and_a_figure_per_pair(core_sections):
    _, folders, _ = core_sections
    table = read_table(folders["ranks"] / "table.parquet")
    assert len(table) == len(MODELS) * len(METHODS) * 2
    assert table.groupby(["model", "metric"])["rank"].apply(sorted).map(len).eq(len(METHODS)).all()
    context = load_context(folders["ranks"])
    assert [p["id"] for p in context["pairs"]] == [f"ranks-shapes--{m}" for m in MODELS]
    for pair in context["pairs"]:
        assert (folders["ranks"] / pair["png"]).is_file() and (folders["ranks"] / pair["svg"]).is_file()


def test_mean_rank_per_family_matches_the_rank_table(core_sections):
    _, folders, _ = core_sections
    table = read_table(folders["ranks"] / "table.parquet")
    context = load_context(folders["ranks"])
    assert context["families"] == ["localisation", "faithfulness"]
    pair = context["pairs"][0]
    rows = table[table["model"] == pair["model"]]
    for row in pair["rows"]:
        mine = rows[rows["method"] == row["method"]].set_index("metric")["rank"]
        assert row["all"] == pytest.approx(mine.mean())
        assert row["families"]["localisation"] == pytest.approx(mine["pointing_game"])
    assert [r["all"] for r in pair["rows"]] == sorted(r["all"] for r in pair["rows"])


def test_page_links_the_table_and_each_method(core_sections):
    _, _, index = core_sections
    text = index.read_text()
    assert 'href="tables/ranks/ranks.csv"' in text
    assert '<section id="ranks-shapes--cnn_a">' in text
    assert pd.read_csv(index.parent / "tables" / "ranks" / "ranks.csv").shape[0] == len(MODELS) * len(METHODS) * 2
