"""A method that gives NaN or Inf for some items: the items are named, left out of every mean and counted,
and the report says so; nothing crashes and nothing non-finite is averaged in."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from salbench.jobs import saliency, score
from salbench.methods import METHODS as REGISTRY
from salbench.report.assemble import load_context, run_sections
from salbench.report.tables import aggregate, load_scores, summarise
from salbench.store import open_store, read_table, write_table

from .helpers import METRICS

SCORED = {name: METRICS[name] for name in ("pointing_game", "deletion")}
INFO = {"pointing_game": {"aggregate": "class_mean", "higher_is_better": True},
        "deletion": {"aggregate": "mean", "higher_is_better": False}}


@pytest.fixture
def poisoned_gradient(monkeypatch):
    """``gradient`` with NaN in the first map of every batch and +Inf in the second map of the second batch."""
    cls = REGISTRY.get("gradient")
    original = cls.attribute
    calls = []

    def attribute(self, model, inputs, target):
        maps = original(self, model, inputs, target).clone()
        maps[0, 0, 0] = math.nan
        if calls:
            maps[1, 2, 3] = math.inf
        calls.append(len(maps))
        return maps

    monkeypatch.setattr(cls, "attribute", attribute)


def test_nonfinite_maps_are_named_excluded_and_counted(study, reference, tmp_path, poisoned_gradient, caplog):
    maps = tmp_path / "gradient.zarr"
    saliency("shapes", "cnn", "gradient", "gradient", {}, study / "data.zarr", study / "cnn.pt", 0, "cpu", 4, maps)
    items = [str(i) for i in open_store(study / "data.zarr")["item"].values]
    bad = [items[0], items[4], items[5]]
    assert open_store(maps).attrs["nonfinite_items"] == bad
    assert "non-finite values (NaN or Inf) in the maps of 3 of 6 items" in caplog.text and bad[0] in caplog.text

    score("shapes", "cnn", "gradient", SCORED, study / "data.zarr", study / "cnn.pt", maps, "cpu", 4,
          tmp_path / "gradient.parquet")
    table = read_table(tmp_path / "gradient.parquet")
    flagged = table[~table["map_finite"]]
    assert sorted(set(flagged["item"])) == sorted(bad) and flagged["value"].isna().all()
    # the finite items score as they do in the run without the fault
    clean = read_table(reference / "scores/gradient.parquet").set_index(["metric", "item"])["value"]
    kept = table[table["map_finite"]].set_index(["metric", "item"])["value"]
    np.testing.assert_allclose(kept.to_numpy(), clean.loc[kept.index].to_numpy(), rtol=1e-6)

    summary = summarise(load_scores([tmp_path / "gradient.parquet"]), INFO, n_boot=100).set_index("metric")
    for metric, info in INFO.items():
        rows = table[(table["metric"] == metric) & table["map_finite"]]
        finite = rows["value"].notna().to_numpy()  # pointing game: NaN where an item has no mask
        expected = aggregate(rows["value"].to_numpy()[finite], rows["target"].to_numpy()[finite], info["aggregate"])
        assert summary.loc[metric, "value"] == pytest.approx(expected)
        assert summary.loc[metric, "n_nonfinite"] == 3
        assert summary.loc[metric, "n_items"] + summary.loc[metric, "n_excluded"] == 3
        assert math.isfinite(summary.loc[metric, "ci_low"]) and math.isfinite(summary.loc[metric, "ci_high"])

    page = leaderboard_page(tmp_path / "report", [tmp_path / "gradient.parquet"])
    assert page.count("(3 non-finite)") == len(SCORED) and "3 non-finite, " in page


def test_a_metric_value_of_inf_is_counted_not_averaged():
    scores = pd.DataFrame({"dataset": "d", "model": "m", "method": "a", "item": list("abcde"), "target": 0,
                           "metric": "deletion", "value": [0.2, np.inf, np.nan, 0.4, -np.inf], "map_finite": True})
    row = summarise(scores, INFO, n_boot=100).iloc[0]
    assert row["value"] == pytest.approx(0.3)
    assert (row["n_items"], row["n_excluded"], row["n_nonfinite"]) == (2, 1, 2)


def test_all_items_nonfinite_gives_an_empty_cell_not_a_crash(tmp_path):
    scores = pd.DataFrame({"dataset": "d", "model": "m", "method": "a", "item": list("ab"), "target": 0,
                           "metric": "deletion", "value": [np.nan, np.nan], "map_finite": False})
    row = summarise(scores, INFO, n_boot=100).iloc[0]
    assert math.isnan(row["value"]) and row["n_items"] == 0 and row["n_nonfinite"] == 2
    path = write_table(scores, tmp_path / "a.parquet")
    assert "(2 non-finite)" in leaderboard_page(tmp_path / "report", [path], {"deletion": SCORED["deletion"]})


def leaderboard_page(folder, score_files, metrics=SCORED) -> str:
    """The leaderboard section's body, run and rendered as the report does, over ``score_files``."""
    from report.sections.section_helpers import render

    config = {"study": "t", "seed": 0, "report": {"bootstrap": 100}, "metrics": metrics,
              "methods": {"gradient": {"method": "gradient"}, "a": {"method": "gradient"}}}
    folders = run_sections("t", config, {"scores": list(score_files), "grids": []}, folder, names=["leaderboard"])
    return render("leaderboard", load_context(folders["leaderboard"]), config)
