"""Rank statistics: hand-made scores whose ranks and Kendall tau are known, the paired bootstrap, families."""

import itertools

import numpy as np
import pandas as pd
import pytest

from salbench.report.ranks import fmt_rank, method_ranks, rank_agreement
from salbench.stats import paired_aggregates
from salbench.report.tables import aggregate, metric_families, metric_order, summarise


UP = {"aggregate": "mean", "higher_is_better": True}
DOWN = {"aggregate": "mean", "higher_is_better": False}


def tidy(values: dict[str, np.ndarray], metric: str = "m", targets: np.ndarray | None = None,
         model: str = "net") -> pd.DataFrame:
    """Tidy scores of one metric from {method: per-item values}."""
    frames = []
    for method, v in values.items():
        n = len(v)
        frames.append(pd.DataFrame({"dataset": "d", "model": model, "method": method,
                                    "item": [f"i{k:03d}" for k in range(n)],
                                    "target": np.zeros(n, int) if targets is None else targets,
                                    "metric": metric, "value": np.asarray(v, float)}))
    return pd.concat(frames, ignore_index=True)


def ranks_of(table: pd.DataFrame, metric: str = "m") -> pd.DataFrame:
    return table[table["metric"] == metric].set_index("method")


def test_point_ranks_follow_the_metric_direction_and_share_ties():
    values = {"a": [0.9, 0.8], "b": [0.1, 0.2], "c": [0.5, 0.5], "d": [0.4, 0.6]}
    up = ranks_of(method_ranks(tidy(values), {"m": UP}, n_boot=50))
    down = ranks_of(method_ranks(tidy(values), {"m": DOWN}, n_boot=50))
    assert up["rank"].to_dict() == {"a": 1.0, "b": 4.0, "c": 2.5, "d": 2.5}
    assert down["rank"].to_dict() == {"a": 4.0, "b": 1.0, "c": 2.5, "d": 2.5}
    assert (up["n_ranked"] == 4).all()


def test_a_method_better_on_every_item_ranks_first_in_every_resample():
    rng = np.random.default_rng(0)
    noise = rng.normal(size=(4, 60))
    values = {"best": noise.max(axis=0) + 0.01, **{f"m{k}": noise[k] for k in range(4)}}
    table = ranks_of(method_ranks(tidy(values), {"m": UP}, n_boot=400, seed=1))
    best = table.loc["best"]
    assert (best["rank"], best["rank_mean"], best["rank_low"], best["rank_high"], best["p_best"]) == (1, 1, 1, 1, 1)
    others = table.drop(index="best")
    assert (others["rank_low"] >= 2).all() and (others["p_best"] == 0).all()
    assert (others["rank_high"] > others["rank_low"]).all()  # the noisy ones do swap places


def test_ranks_are_paired_across_methods():
    # b is a + 0.01 on every item; a's spread across items is huge, so unpaired means would swap often
    a = np.random.default_rng(2).normal(scale=10.0, size=40)
    table = ranks_of(method_ranks(tidy({"a": a, "b": a + 0.01}), {"m": UP}, n_boot=500, seed=3))
    assert table.loc["b", "rank_high"] == 1 and table.loc["a", "rank_low"] == 2
    assert table.loc["b", "p_best"] == 1


def test_rank_bootstrap_is_deterministic_from_the_seed():
    rng = np.random.default_rng(4)
    scores = tidy({f"m{k}": rng.normal(size=30) + 0.1 * k for k in range(6)})
    first = method_ranks(scores, {"m": UP}, n_boot=300, seed=7)
    pd.testing.assert_frame_equal(first, method_ranks(scores, {"m": UP}, n_boot=300, seed=7))
    other = method_ranks(scores, {"m": UP}, n_boot=300, seed=8)
    assert not np.allclose(first["rank_mean"], other["rank_mean"])
    pd.testing.assert_series_equal(first["rank"], other["rank"])  # the point ranks do not depend on the seed


def test_class_mean_ranks_use_the_class_mean():
    # 9 items of class 0, 1 of class 1: a wins the item mean, b wins the class mean
    targets = np.array([0] * 9 + [1])
    values = {"a": [1.0] * 9 + [0.0], "b": [0.6] * 9 + [1.0]}
    by_item = ranks_of(method_ranks(tidy(values, targets=targets), {"m": UP}, n_boot=50))
    by_class = ranks_of(method_ranks(tidy(values, targets=targets), {"m": {**UP, "aggregate": "class_mean"}},
                                     n_boot=50))
    assert by_item.loc["a", "rank"] == 1 and by_class.loc["b", "rank"] == 1


@pytest.mark.parametrize("how", ["mean", "class_mean"])
def test_weighted_aggregates_match_aggregating_the_drawn_items(how):
    rng = np.random.default_rng(5)
    values, targets = rng.random((3, 25)), rng.integers(0, 4, size=25)
    values[rng.random((3, 25)) < 0.2] = np.nan  # unscorable items, different per method
    draws = rng.integers(0, 25, size=(6, 25))
    weights = np.stack([np.bincount(d, minlength=25) for d in draws]).astype(float)
    got = paired_aggregates(values, targets, how, weights)
    for b, d in enumerate(draws):
        for m in range(3):
            keep = ~np.isnan(values[m, d])
            assert got[b, m] == pytest.approx(aggregate(values[m, d][keep], targets[d][keep], how))


def test_methods_without_scorable_items_are_not_ranked():
    values = {"a": [1.0, 2.0], "b": [np.nan, np.nan], "c": [0.0, 0.5]}
    table = ranks_of(method_ranks(tidy(values), {"m": UP}, n_boot=50))
    assert np.isnan(table.loc["b", "rank"]) and table.loc["a", "rank"] == 1 and table.loc["c", "rank"] == 2
    assert (table["n_ranked"] == 2).all()


def agreement_of(values: dict[str, dict[str, list[float]]], info: dict[str, dict]) -> pd.DataFrame:
    scores = pd.concat([tidy(v, metric=m) for m, v in values.items()], ignore_index=True)
    table = rank_agreement(summarise(scores, info, n_boot=100))
    return table.set_index(["metric_a", "metric_b"])["tau"]


def test_kendall_tau_is_one_for_the_same_order_and_minus_one_for_the_reverse():
    order = {"a": [4.0], "b": [3.0], "c": [2.0], "d": [1.0]}
    values = {
        "up": order,
        "down": {m: [10.0 - v[0]] for m, v in order.items()},  # lower is better: the same ordering
        "reversed": {m: [-v[0]] for m, v in order.items()},  # higher is better: the reverse ordering
    }
    tau = agreement_of(values, {"up": UP, "down": DOWN, "reversed": UP})
    assert tau[("up", "down")] == pytest.approx(1.0) and tau[("down", "up")] == pytest.approx(1.0)
    assert tau[("up", "reversed")] == pytest.approx(-1.0) and tau[("down", "reversed")] == pytest.approx(-1.0)
    assert all(tau[(m, m)] == pytest.approx(1.0) for m in values)


def test_kendall_tau_matches_counting_pairs():
    x, y = [1.0, 2.0, 3.0, 4.0, 5.0], [2.0, 1.0, 3.0, 5.0, 4.0]
    methods = "abcde"
    tau = agreement_of({"x": dict(zip(methods, [[v] for v in x])), "y": dict(zip(methods, [[v] for v in y]))},
                       {"x": UP, "y": UP})
    signs = [np.sign((x[i] - x[j]) * (y[i] - y[j])) for i, j in itertools.combinations(range(5), 2)]
    assert tau[("x", "y")] == pytest.approx(np.sum(signs) / len(signs))  # (8 - 2) / 10


def test_families_come_from_the_catalog_modules():
    config = {"metrics": {"pg": {"metric": "pointing_game"}, "del": {"metric": "deletion"},
                          "gini": {"metric": "sparseness"}, "mine": {"metric": "not_registered"},
                          "tagged": {"metric": "deletion"}}}
    info = {name: {} for name in config["metrics"]} | {"tagged": {"family": "robustness"}}
    families = metric_families(config, info)
    assert families == {"pg": "localisation", "del": "faithfulness", "gini": "complexity", "mine": "other",
                        "tagged": "robustness"}
    assert metric_order(families) == ["pg", "del", "gini", "mine", "tagged"]


def test_rank_labels():
    assert [fmt_rank(r) for r in (1.0, 2.5, float("nan"))] == ["1", "2.5", "n/a"]
