"""Resilient ranks (Wickstrøm, Höhne & Hedström 2024; newer-checks.md §5): known MRR, W and tau; manipulation."""

import math

import numpy as np
import pandas as pd
import pytest

from salbench.report.resilience import (
    RESILIENCE_COLUMNS, kendalls_w, manipulating_setting, mean_pairwise_tau, resilience_table, resilient_ranks,
    setting_ranks,
)

# three settings of a higher-is-better metric over methods a, b, c: rankings (1,2,3), (1,2,3), (2,1,3)
KNOWN = np.array([[0.9, 0.5, 0.1], [0.8, 0.6, 0.2], [0.6, 0.7, 0.3]])


def test_known_matrix_gives_known_mrr_w_and_tau():
    stats = resilient_ranks(KNOWN, higher_is_better=True)
    np.testing.assert_allclose(stats["mrr"], [4 / 3, 5 / 3, 3])
    np.testing.assert_array_equal(stats["rank_min"], [1, 1, 3])
    np.testing.assert_array_equal(stats["rank_max"], [2, 2, 3])
    np.testing.assert_allclose(stats["rank_std"], [np.std([1, 1, 2]), np.std([2, 2, 1]), 0.0])
    # rank sums 4, 5, 9 around 6: S = 14; W = 12 * 14 / (3^2 * (3^3 - 3)) = 7 / 9
    assert stats["kendall_w"] == pytest.approx(7 / 9)
    # taus: (1,2,3) vs (1,2,3) = 1, against (2,1,3) = 1/3 twice
    assert stats["mean_tau"] == pytest.approx(5 / 9)
    assert stats["n_settings"] == 3


def test_direction_and_ties():
    np.testing.assert_array_equal(setting_ranks(np.array([[0.1, 0.5, 0.5]]), higher_is_better=False), [[1, 2.5, 2.5]])
    np.testing.assert_array_equal(setting_ranks(np.array([[0.1, 0.5, 0.5]]), higher_is_better=True), [[3, 1.5, 1.5]])


def test_concordance_bounds_and_tie_correction():
    same = np.tile([1.0, 2.0, 3.0, 4.0], (5, 1))
    assert kendalls_w(same) == pytest.approx(1.0)
    assert kendalls_w(np.array([[1.0, 2.0], [2.0, 1.0]])) == pytest.approx(0.0)
    # tied rankings: without the correction W would be 12*S / (H^2 (L^3 - L)) = 0.75, below its maximum
    tied = np.array([[1.5, 1.5, 3.0], [1.5, 1.5, 3.0]])
    assert kendalls_w(tied) == pytest.approx(1.0)
    assert math.isnan(kendalls_w(np.full((2, 3), 2.0)))
    assert mean_pairwise_tau(same) == pytest.approx(1.0)


def test_nan_setting_is_dropped_for_all_methods():
    scores = np.vstack([KNOWN, [[np.nan, 0.0, 1.0]]])
    stats = resilient_ranks(scores, higher_is_better=True)
    assert stats["n_settings"] == 3
    np.testing.assert_allclose(stats["mrr"], [4 / 3, 5 / 3, 3])


def test_manipulation_flips_one_setting_but_not_the_mrr():
    # lower-is-better (a deletion AUC); the focus method c is last at every setting but one, and first there
    scores = np.array([[0.2, 0.3, 0.6], [0.25, 0.35, 0.7], [0.4, 0.5, 0.1], [0.2, 0.3, 0.5]])
    focus = 2
    picked = manipulating_setting(scores, focus, higher_is_better=False)
    assert picked == 2
    single = setting_ranks(scores[picked:picked + 1], higher_is_better=False)[0]
    assert single[focus] == 1  # the manipulated report: c is best
    stats = resilient_ranks(scores, higher_is_better=False)
    assert stats["mrr_rank"][focus] == 3 and stats["rank_min"][focus] == 1 and stats["rank_max"][focus] == 3
    assert stats["mrr_rank"][0] == 1


def test_table_has_one_row_per_method_and_needs_a_direction():
    rows = [{"dataset": "d", "model": "m", "metric": "deletion", "setting": f"steps={h}", "method": method,
             "value": KNOWN[h, j]} for h in range(3) for j, method in enumerate("abc")]
    table = resilience_table(pd.DataFrame(rows), {"deletion": True})
    assert list(table.columns) == RESILIENCE_COLUMNS
    assert table.set_index("method")["mrr"].to_dict() == pytest.approx({"a": 4 / 3, "b": 5 / 3, "c": 3.0})
    assert (table["n_settings"] == 3).all() and (table["n_methods"] == 3).all()
    with pytest.raises(KeyError, match="deletion"):
        resilience_table(pd.DataFrame(rows), {})
