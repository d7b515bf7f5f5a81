"""The report's sanity section: verdicts from tidy tables, control validation, figures and HTML."""

from __future__ import annotations

import pandas as pd

from salbench.report import sanity
from salbench.store import write_table

CONFIG = {"sanity": {"measure": "spearman_abs", "thresholds": {}},
          "methods": {"gradient": {"method": "gradient"}, "sobel": {"method": "sobel"}, "edges": {"method": "sobel"}}}


def cascade(method: str, last: float, n: int = 6, stages: int = 3) -> pd.DataFrame:
    """A model-sensitivity table whose similarity falls linearly from 1 to ``last`` over the stages."""
    rows = [{"dataset": "shapes", "model": "cnn", "method": method, "check": "model_sensitivity",
             "statistic": "spearman_abs", "stage": "original" if k == 0 else f"block{k}", "stage_index": k,
             "item": f"i{i}", "value": 1 + (last - 1) * k / stages + 0.01 * (i % 2)}
            for k in range(stages + 1) for i in range(n)]
    return pd.DataFrame(rows)


def test_verdicts_pass_a_changing_map_and_validate_the_check_with_the_sobel_control(tmp_path):
    table = pd.concat([cascade("gradient", 0.1), cascade("sobel", 1.0)], ignore_index=True)
    path = tmp_path / "t.parquet"
    write_table(table, path)
    table = sanity.verdict_table(sanity.load_tables([path]), CONFIG, n_boot=200, seed=0)
    assert table["trustworthy"].all()
    verdicts = table[table["check"] == "model_sensitivity"].set_index("method")
    assert verdicts.loc["gradient", "passed"] and not verdicts.loc["sobel", "passed"]
    assert verdicts.loc["gradient", "value"] < 0.2 and verdicts.loc["gradient", "decisive"]
    top = table[table["check"] == "top_layer_sensitivity"].set_index("method")  # stage 2 of 3: 1 - 0.9 * 2/3
    assert abs(top.loc["gradient", "value"] - 0.405) < 1e-9 and top.loc["gradient", "passed"]
    assert not top.loc["sobel", "passed"]


def test_a_control_that_passes_marks_the_check_untrustworthy_in_the_html(tmp_path):
    table = pd.concat([cascade("gradient", 0.1), cascade("edges", 0.0)], ignore_index=True)
    verdicts = sanity.verdict_table(table, CONFIG, n_boot=200, seed=0)
    assert not verdicts["trustworthy"].any()
    curves = sanity.cascade_curves(table, "spearman_abs", ["gradient", "edges"], {"edges"}, tmp_path / "c.png")
    assert curves.is_file() and (tmp_path / "c.svg").is_file()
    section = sanity.SanitySection(verdicts=verdicts, curves_png="c.png", grids={}, verdicts_csv="v.csv",
                                   permuted_accuracy={("shapes", "cnn"): 0.97})
    page = sanity.render(section, ["gradient", "edges"], {"edges"}, lambda v: f"{v:.2f}")
    assert "not trustworthy" in page and "0.97" in page and 'src="c.png"' in page
    assert page.count("<tr><th>") == 3 and "<em>edges</em>" in page


def test_no_tables_give_an_empty_section():
    empty = sanity.load_tables([])
    assert sanity.verdict_table(empty, CONFIG, n_boot=100, seed=0).empty
    assert "No sanity checks" in sanity.render(None, [], set(), str)
