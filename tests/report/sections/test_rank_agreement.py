"""The rank agreement section: Kendall tau between metrics from the leaderboard's values."""

import pytest
from scipy.stats import kendalltau

from salbench.report.assemble import load_context
from salbench.store import read_table

from ..synthetic import MODELS


def test_tau_is_kendall_between_oriented_metric_values(core_sections):
    _, folders, _ = core_sections
    summary = read_table(folders["leaderboard"] / "table.parquet")
    table = read_table(folders["rank_agreement"] / "table.parquet")
    part = summary[summary["model"] == "cnn_a"].pivot(index="method", columns="metric", values="value")
    # pointing game is higher-is-better, deletion lower-is-better: the deletion values are negated first
    expected = kendalltau(part["pointing_game"], -part["deletion_auc"]).statistic
    row = table.set_index(["model", "metric_a", "metric_b"]).loc[("cnn_a", "pointing_game", "deletion_auc")]
    assert row["tau"] == pytest.approx(expected) and row["n_methods"] == 4
    assert (table[table["metric_a"] == table["metric_b"]]["tau"] == 1).all()


def test_context_has_a_matrix_and_figure_per_pair(core_sections):
    _, folders, index = core_sections
    context = load_context(folders["rank_agreement"])
    assert [p["id"] for p in context["pairs"]] == [f"rank_agreement-shapes--{m}" for m in MODELS]
    pair = context["pairs"][0]
    assert [r["metric"] for r in pair["rows"]] == ["pointing_game", "deletion_auc"]  # families in report order
    assert pair["rows"][0]["pointing_game"] == pytest.approx(1.0)
    assert (folders["rank_agreement"] / pair["png"]).is_file()
    assert 'href="tables/rank_agreement/rank_agreement.csv"' in index.read_text()


def test_nothing_to_compare_says_so(tmp_path):
    import pandas as pd

    from salbench.report.sections import SectionContext, run_section
    from salbench.report.tables import SUMMARY_COLUMNS, write_frame

    write_frame(pd.DataFrame(columns=SUMMARY_COLUMNS), tmp_path / "leaderboard" / "table.parquet")
    ctx = SectionContext("s", {"metrics": {}}, {}, tmp_path / "rank_agreement",
                         needed={"leaderboard": tmp_path / "leaderboard"})
    run_section("rank_agreement", ctx)
    assert load_context(tmp_path / "rank_agreement") == {"empty": "No metric has values to compare."}
