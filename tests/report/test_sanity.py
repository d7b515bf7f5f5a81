"""The report's sanity statistics: verdicts from tidy tables, control validation, the matrices' and self-test's
contents and the figures (the section itself: tests/report/sections/test_sanity.py)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import xarray as xr

from salbench.report import sanity
from salbench.store import write_store, write_table

CONFIG = {"sanity": {"measure": "spearman_abs", "thresholds": {}},
          "methods": {"gradient": {"method": "gradient"}, "sobel": {"method": "sobel"}, "edges": {"method": "sobel"}}}


def cascade(method: str, last: float, n: int = 6, stages: int = 3, check: str = "model_sensitivity") -> pd.DataFrame:
    """A cascade table (top-down by default) whose similarity falls linearly from 1 to ``last`` over the stages."""
    rows = [{"dataset": "shapes", "model": "cnn", "method": method, "check": check,
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


def test_a_control_that_passes_marks_the_check_untrustworthy(tmp_path):
    table = pd.concat([cascade("gradient", 0.1), cascade("edges", 0.0)], ignore_index=True)
    verdicts = sanity.verdict_table(table, CONFIG, n_boot=200, seed=0)
    assert not verdicts["trustworthy"].any()
    curves = sanity.cascade_curves(table, "spearman_abs", ["gradient", "edges"], {"edges"}, tmp_path / "c.png")
    assert curves.is_file() and (tmp_path / "c.svg").is_file()
    (pair,) = sanity.verdict_matrices(verdicts, ["gradient", "edges"], {"edges"}, {("shapes", "cnn"): 0.97})
    assert pair["permuted_accuracy"] == 0.97 and all(c["trustworthy"] is False for c in pair["checks"])
    assert [(r["method"], r["control"]) for r in pair["rows"]] == [("gradient", False), ("edges", True)]
    test = {t["check"]: t for t in pair["self_test"]}["model_sensitivity"]
    assert test["controls"] == [{"method": "edges", "passed": True}]
    assert test["conclusion"] == "not trustworthy: a control passes it"


def test_no_tables_give_no_verdicts():
    empty = sanity.load_tables([])
    assert sanity.verdict_table(empty, CONFIG, n_boot=100, seed=0).empty


NOISY_CONFIG = {"sanity": {"measure": "spearman_abs", "thresholds": {}},
                "methods": {"gradient": {"method": "gradient", "params": {}},
                            "gradient_fine": {"method": "gradient", "params": {"channel_reduction": "sum"}},
                            "noisy_gradient": {"method": "noisy", "params": {"base": "gradient", "sigma": 1.0}},
                            "noise": {"method": "random"}, "sobel": {"method": "sobel"}}}


def test_noisy_methods_pair_with_the_clean_method_of_the_same_base_and_params():
    methods = list(NOISY_CONFIG["methods"])
    assert sanity.noisy_pairs(NOISY_CONFIG, methods) == {"noisy_gradient": "gradient"}
    assert sanity.noisy_pairs(NOISY_CONFIG, ["noisy_gradient", "gradient_fine"]) == {}
    explicit = {"methods": {"grad": {"method": "gradient", "params": {"channel_reduction": "max_abs"}},
                            "noisy_grad": {"method": "noisy", "params": {"sigma": 0.5}}}}  # the defaults, spelt out
    assert sanity.noisy_pairs(explicit, ["grad", "noisy_grad"]) == {"noisy_grad": "grad"}


def test_self_test_marks_a_check_that_rewards_noise_and_one_pure_noise_passes():
    """The noisy gradient ends further from its original than the gradient (top-down): the check rewards noise. The
    random control passes model sensitivity here: necessary, not sufficient."""
    table = pd.concat([cascade("gradient", 0.4), cascade("noisy_gradient", 0.05), cascade("noise", 0.0),
                       cascade("sobel", 1.0)], ignore_index=True)
    verdicts = sanity.verdict_table(table, NOISY_CONFIG, n_boot=200, seed=0)
    full = verdicts[verdicts["check"] == "model_sensitivity"].set_index("method")
    assert full["rewards_noise"].all() and full.loc["noisy_gradient", "clean_method"] == "gradient"
    assert full.loc["noisy_gradient", "noise_ci_high"] < 0 and full.loc["noise", "method_name"] == "random"
    test = {t["check"]: t for t in sanity.self_test_rows(verdicts, ["model_sensitivity"])}["model_sensitivity"]
    assert test["conclusion"] == "rewards noise: a noisy map scores better than its clean original"
    assert test["traps"][0]["noisy"] == "noisy_gradient" and test["traps"][0]["clean"] == "gradient"
    assert {"method": "sobel", "passed": False} in test["controls"] and test["random"][0]["passed"]
    # without the noisy variant the check is validated, and pure noise passing it is called necessary, not sufficient
    clean = sanity.verdict_table(table[table["method"] != "noisy_gradient"], NOISY_CONFIG, n_boot=200, seed=0)
    assert clean["rewards_noise"].isna().all()
    (test,) = sanity.self_test_rows(clean, ["model_sensitivity"])
    assert test["conclusion"] == "pure noise passes it: a necessary condition, not a sufficient one"


def test_cascade_figures_show_both_orders(tmp_path):
    table = pd.concat([cascade("gradient", 0.6), cascade("gradient", 0.1, check="model_sensitivity_bottom_up")],
                      ignore_index=True)
    verdicts = sanity.verdict_table(table, CONFIG, n_boot=200, seed=0).set_index("check")
    assert verdicts.loc["bottom_layer_sensitivity", "passed"] and not verdicts.loc["top_layer_sensitivity", "passed"]
    assert sanity.cascade_curves(table, "spearman_abs", ["gradient"], set(), tmp_path / "c.png").is_file()
    stages = ["original", "fc", "conv2", "conv1", "bottom_up:conv1", "bottom_up:conv2", "bottom_up:fc"]
    maps = np.arange(7.0)[:, None, None] * np.ones((7, 2, 2))
    rows = sanity.order_rows(stages, maps)
    assert [(order, names) for order, names, _ in rows] == [
        ("top_down", ["original", "fc", "conv2", "conv1"]), ("bottom_up", ["original", "conv1", "conv2", "fc"])]
    np.testing.assert_array_equal(rows[1][2][:, 0, 0], [0, 4, 5, 6])
    store = tmp_path / "gradient.zarr"
    write_store(xr.Dataset({"saliency": (("stage", "item", "y", "x"), np.random.default_rng(0).random((7, 1, 8, 8)))},
                           coords={"stage": np.array(stages, dtype=object), "item": np.array(["i0"], dtype=object)},
                           attrs={"method": "gradient", "settings": {"orders": ["top_down", "bottom_up"]}}), store)
    assert sanity.cascade_grid([store], ["gradient"], set(), tmp_path / "grid.png").is_file()
