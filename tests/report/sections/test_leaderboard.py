"""The leaderboard section: the summary's numbers, the cells with their ranks, readable small-multiple figures and
the skipped-metrics notes."""

import re

import numpy as np
import pandas as pd
import pytest

from salbench.report.assemble import load_context
from salbench.report.sections.leaderboard import FIGURE_METRICS
from salbench.store import read_table

from ..synthetic import METHODS, MODELS, SKIPPED


def test_summary_follows_each_metrics_aggregate_and_counts_excluded_items(core_sections):
    _, folders, _ = core_sections
    summary = read_table(folders["leaderboard"] / "table.parquet")
    row = summary.set_index(["model", "method", "metric"]).loc[("cnn_a", "gradient", "pointing_game")]
    # classes 0, 1, 2 hit 4/4, 0/2 and 2/4 of their scorable items: class mean 0.5, item mean 6/10
    assert row["aggregate"] == "class_mean" and row["value"] == pytest.approx(0.5)
    assert row["n_items"] == 10 and row["n_excluded"] == 2 and row["n_classes"] == 3
    assert (summary["ci_low"] <= summary["value"]).all() and (summary["value"] <= summary["ci_high"]).all()
    assert len(summary) == len(MODELS) * len(METHODS) * 2
    assert pd.read_csv(folders["leaderboard"] / "leaderboard.csv").shape == summary.shape


def test_cells_carry_value_interval_and_rank(core_sections):
    _, folders, _ = core_sections
    context = load_context(folders["leaderboard"])
    ranks = read_table(folders["ranks"] / "table.parquet").set_index(["model", "method", "metric"])
    pair = next(p for p in context["pairs"] if p["model"] == "cnn_a")
    family = next(f for f in pair["families"] if [m["name"] for m in f["metrics"]] == ["pointing_game"])
    row = next(r for r in family["rows"] if r["method"] == "gradient")
    cell = row["cells"][0]
    assert cell["value"] == pytest.approx(0.5) and cell["n_excluded"] == 2
    assert cell["rank"] == ranks.loc[("cnn_a", "gradient", "pointing_game"), "rank"]
    mean_ranks = [r["mean_rank"] for r in family["rows"]]
    assert mean_ranks == sorted(mean_ranks)  # best first
    assert {r["method"] for r in family["rows"] if r["control"]} == {"random", "edges"}


def test_page_shows_cells_notes_and_excluded_counts(core_sections):
    _, _, index = core_sections
    text = index.read_text()
    sections = re.split(r'<section id="leaderboard-shapes--', text)
    by_model = {model: next(s for s in sections if s.startswith(model)) for model in MODELS}
    (metric, reason), = SKIPPED.items()
    note = f"metric <code>{metric}</code> not computed on shapes: {reason}".replace("'", "&#39;")
    assert note in by_model[MODELS[-1]] and metric not in by_model[MODELS[0]]
    assert "(2 excluded)" in by_model["cnn_a"]
    assert re.search(r"#\d(\.\d)? \[\d(\.\d)?, \d(\.\d)?\]", by_model["cnn_a"])  # rank and its interval


def test_metrics_figure_is_small_multiples_per_family(core_sections):
    _, folders, _ = core_sections
    context = load_context(folders["leaderboard"])
    assert [(f["dataset"], f["family"]) for f in context["figures"]] == [("shapes", "localisation"),
                                                                        ("shapes", "faithfulness")]
    for figure in context["figures"]:
        assert len(figure["metrics"].split(", ")) <= FIGURE_METRICS
        assert (folders["leaderboard"] / figure["png"]).is_file() and (folders["leaderboard"] / figure["svg"]).is_file()


def test_figures_stay_within_the_page_width_with_many_metrics(tmp_path):
    """Six metrics used to make one figure of six panels (about 2,200 px wide); now no figure is wider than
    FIGURE_METRICS panels and each holds one family."""
    from PIL import Image

    from salbench.report.sections._scores import StudyScores
    from salbench.report.sections.base import SectionContext
    from salbench.report.sections.leaderboard import _figures

    metrics = [f"m{i:02d}" for i in range(6)]
    families = {m: "localisation" if i < 5 else "faithfulness" for i, m in enumerate(metrics)}
    summary = pd.DataFrame([{"dataset": "d", "model": "a", "method": f"k{j}", "metric": m, "value": 0.5,
                             "ci_low": 0.4, "ci_high": 0.6, "higher_is_better": True}
                            for m in metrics for j in range(3)])
    study = StudyScores(summary, {}, families, metrics, ["k0", "k1", "k2"], set())
    figures = _figures(SectionContext("s", {}, {}, tmp_path), summary, study)
    assert [(f["family"], len(f["metrics"].split(", "))) for f in figures] == [
        ("localisation", 4), ("localisation", 1), ("faithfulness", 1)]
    assert max(Image.open(tmp_path / f["png"]).size[0] for f in figures) < 1600


def test_by_method_lists_every_value_of_a_method(core_sections):
    _, folders, _ = core_sections
    rows = load_context(folders["leaderboard"])["by_method"]["gradcam"]["rows"]
    assert len(rows) == len(MODELS) * 2 and all(np.isfinite(r["value"]) for r in rows)
