"""The one statistics module: intervals against scipy, paired draws, map arithmetic on arrays and tensors."""

import numpy as np
import pytest
import torch
from scipy import stats as scipy_stats

from salbench import stats


def test_resample_weights_draw_every_item_count_once_per_row():
    rows = np.concatenate(list(stats.resample_weights(7, 50, np.random.default_rng(0))))
    assert rows.shape == (50, 7) and (rows.sum(axis=1) == 7).all() and (rows >= 0).all()


@pytest.mark.parametrize("method", ["percentile", "bca"])
def test_bootstrap_interval_agrees_with_scipy(method):
    values = np.random.default_rng(3).lognormal(0.0, 1.0, 100)  # skewed: BCa and percentile differ by > 5 %
    ours = stats.bootstrap_interval(values, n_boot=20000, rng=np.random.default_rng(1), method=method)
    theirs = scipy_stats.bootstrap((values,), np.mean, n_resamples=20000, method=method.replace("bca", "BCa"),
                                   random_state=np.random.default_rng(2)).confidence_interval
    assert ours[0] == pytest.approx(values.mean())
    width = theirs.high - theirs.low
    assert ours[1] == pytest.approx(theirs.low, abs=0.03 * width)  # Monte Carlo error of two independent runs
    assert ours[2] == pytest.approx(theirs.high, abs=0.03 * width)


def test_bca_moves_the_interval_towards_the_skew():
    values = np.random.default_rng(4).lognormal(0.0, 1.0, 80)
    _, p_low, p_high = stats.bootstrap_interval(values, n_boot=4000, rng=np.random.default_rng(5))
    _, b_low, b_high = stats.bootstrap_interval(values, n_boot=4000, rng=np.random.default_rng(5), method="bca")
    assert b_low > p_low and b_high > p_high  # right-skewed mean: BCa shifts both ends up


def test_bootstrap_interval_is_seeded_drops_nan_and_handles_degenerate_input():
    values = np.random.default_rng(0).normal(size=40)
    run = lambda seed: stats.bootstrap_interval(values, n_boot=300, rng=np.random.default_rng(seed))  # noqa: E731
    assert run(1) == run(1) != run(2)
    assert stats.bootstrap_interval([0.5, np.nan, 0.5], n_boot=50, rng=np.random.default_rng(0)) == (0.5, 0.5, 0.5)
    assert all(np.isnan(stats.bootstrap_interval([np.nan], n_boot=50, rng=np.random.default_rng(0))))
    with pytest.raises(ValueError, match="allowed: percentile, bca"):
        stats.bootstrap_interval(values, n_boot=5, rng=np.random.default_rng(0), method="normal")


def test_class_mean_weights_each_class_equally():
    values, targets = np.array([1.0, 1.0, 1.0, 0.0]), np.array([0, 0, 0, 1])
    point, low, high = stats.bootstrap_interval(values, targets=targets, how="class_mean", n_boot=200,
                                                rng=np.random.default_rng(0))
    assert point == 0.5 and low <= 0.5 <= high


def test_paired_bootstrap_keeps_a_dominant_method_ahead_in_every_draw():
    rng = np.random.default_rng(0)
    base = rng.normal(size=30)
    values = np.stack([base + 0.01, base])  # method 0 better on every item by a hair
    point, boot = stats.paired_bootstrap(values, None, "mean", 500, np.random.default_rng(1))
    assert point[0] > point[1] and (boot[:, 0] > boot[:, 1]).all()


def test_statistic_interval_of_the_median():
    values = np.arange(101, dtype=float)
    median, low, high = stats.statistic_interval(values, lambda v: np.median(v, axis=1), n_boot=2000,
                                                 rng=np.random.default_rng(0))
    assert median == 50.0 and low < 50.0 < high and high - low < 30


def test_min_max_on_arrays_and_tensors_alike():
    maps = np.array([[1.0, 3.0, 2.0], [4.0, 4.0, 4.0]])
    expected = np.array([[0.0, 1.0, 0.5], [0.0, 0.0, 0.0]])
    np.testing.assert_array_equal(stats.min_max(maps), expected)
    np.testing.assert_array_equal(stats.min_max(torch.from_numpy(maps)).numpy(), expected)
    np.testing.assert_array_equal(stats.min_max(maps, constant="keep")[1], maps[1])
    stack = np.arange(8.0).reshape(2, 2, 2)
    np.testing.assert_array_equal(stats.min_max(stack, axis=(1, 2)).reshape(2, 4), np.tile(np.arange(4) / 3, (2, 1)))


def test_spearman_matches_scipy_with_ties_and_constant_rows():
    rng = np.random.default_rng(0)
    a, b = rng.integers(0, 4, (5, 30)).astype(float), rng.normal(size=(5, 30))
    a[4] = 2.0
    expected = [scipy_stats.spearmanr(x, y).statistic if x.std() > 0 else np.nan for x, y in zip(a, b)]
    np.testing.assert_allclose(stats.spearman(a, b), expected, rtol=1e-12)
    np.testing.assert_allclose(stats.spearman(torch.from_numpy(a), torch.from_numpy(b)).numpy(), expected,
                               rtol=1e-12)


@pytest.mark.parametrize("how", ["mean", "class_mean"])
def test_weighted_bootstrap_matches_a_plain_loop_over_the_same_draws(how):
    rng = np.random.default_rng(3)
    values, targets = rng.random(40), rng.integers(0, 4, size=40)
    _, low, high = stats.bootstrap_interval(values, targets=targets, how=how, n_boot=300, rng=np.random.default_rng(7))
    weights = np.concatenate(list(stats.resample_weights(40, 300, np.random.default_rng(7))))
    plain = []
    for w in weights.astype(int):
        drawn = np.repeat(np.arange(40), w)
        v, t = values[drawn], targets[drawn]
        plain.append(v.mean() if how == "mean" else np.mean([v[t == c].mean() for c in np.unique(t)]))
    assert (low, high) == pytest.approx(tuple(np.quantile(plain, [0.025, 0.975])))
