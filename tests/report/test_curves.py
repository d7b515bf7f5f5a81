"""The report's deletion/insertion curves: mean curve with a bootstrap band per method, drawn from curves tables."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from salbench.report import curves
from salbench.store import write_table

from .synthetic import curve_values


def _table(values: np.ndarray, method: str = "gradient", metric: str = "deletion") -> pd.DataFrame:
    n, steps = values.shape
    return pd.DataFrame({
        "dataset": "shapes", "model": "cnn", "method": method, "item": np.repeat([f"i{k}" for k in range(n)], steps),
        "target": np.zeros(n * steps, dtype=np.int64), "metric": metric, "step": np.tile(np.arange(steps), n),
        "fraction": np.tile(np.linspace(0, 1, steps), n), "value": values.reshape(-1)})


def test_mean_curve_by_hand_and_its_band():
    values = np.array([[1.0, 0.0], [0.0, 0.0], [0.5, 0.0]])
    summary = curves.curve_summary(_table(values), n_boot=500, seed=0)
    np.testing.assert_allclose(summary["mean"], [0.5, 0.0])
    assert list(summary["fraction"]) == [0.0, 1.0] and (summary["n_items"] == 3).all()
    first = summary.iloc[0]
    assert 0.0 <= first["ci_low"] < 0.5 < first["ci_high"] <= 1.0  # the items differ at step 0
    assert summary.iloc[1][["ci_low", "ci_high"]].tolist() == [0.0, 0.0]  # and agree at step 1
    again = curves.curve_summary(_table(values), n_boot=500, seed=0)
    pd.testing.assert_frame_equal(summary, again)  # seeded


def test_band_resamples_whole_curves_like_a_plain_loop():
    values = np.random.default_rng(0).random((7, 4))
    rng = np.random.default_rng(5)
    mean, low, high = curves.mean_curve(values, 300, rng)
    # the same draws by a plain loop: multinomial counts of the items, one resample at a time
    loop_rng = np.random.default_rng(5)
    counts = loop_rng.multinomial(7, np.full(7, 1 / 7), size=300)
    means = np.stack([(c[:, None] * values).sum(axis=0) / 7 for c in counts])
    np.testing.assert_allclose(mean, values.mean(axis=0))
    np.testing.assert_allclose(low, np.quantile(means, 0.025, axis=0))
    np.testing.assert_allclose(high, np.quantile(means, 0.975, axis=0))


def test_items_with_a_non_finite_point_leave_the_whole_curve_out():
    values = np.array([[1.0, 0.5], [np.nan, np.nan], [0.0, 0.5]])
    summary = curves.curve_summary(_table(values), n_boot=50, seed=0)
    np.testing.assert_allclose(summary["mean"], [0.5, 0.5])
    assert (summary["n_items"] == 2).all()


def test_load_curves_checks_columns_and_duplicates(tmp_path):
    table = _table(np.ones((2, 3)))
    write_table(table, tmp_path / "a.parquet")
    write_table(table.drop(columns="fraction"), tmp_path / "bad.parquet")
    write_table(table.iloc[:0], tmp_path / "empty.parquet")
    assert len(curves.load_curves([tmp_path / "a.parquet", tmp_path / "empty.parquet"])) == 6
    assert curves.load_curves([tmp_path / "empty.parquet"]).empty
    with pytest.raises(ValueError, match="lacks columns fraction"):
        curves.load_curves([tmp_path / "bad.parquet"])
    with pytest.raises(ValueError, match="two curves"):
        curves.load_curves([tmp_path / "a.parquet", tmp_path / "a.parquet"])


@pytest.mark.parametrize("controls", [set(), {"random"}])
def test_figure_from_a_synthetic_curves_table_dashes_the_controls(tmp_path, controls):
    table = pd.concat([_table(curve_values(m, 6), method=m) for m in ("gradient", "random")], ignore_index=True)
    summary = curves.curve_summary(table, n_boot=100, seed=0)
    written = curves.curves_figure(summary, ["deletion"], ["gradient", "random"], controls,
                                   {"deletion": {"higher_is_better": False}}, "shapes / cnn", tmp_path / "c.png")
    assert [p.name for p in written] == ["c.png", "c.svg"] and all(p.stat().st_size > 5_000 for p in written)
    svg = (tmp_path / "c.svg").read_text()
    assert "random" in svg and "lower is better" in svg
    assert ("stroke-dasharray" in svg) == bool(controls)


def test_method_groups_pack_whole_families_into_panels():
    families = {"a1": "A", "a2": "A", "b1": "B", "c1": "C", "c2": "C", "c3": "C", "ctl": "controls"}
    methods = list(families)
    assert curves.method_groups(methods, {"ctl"}, families, size=3) == [["a1", "a2", "b1"], ["c1", "c2", "c3"]]
    assert curves.method_groups(methods, {"ctl"}, families, size=2) == [["a1", "a2"], ["b1"], ["c1", "c2"], ["c3"]]
    assert curves.method_groups(["x", "y"], set(), {}, size=1) == [["x"], ["y"]]  # no family: one each


def test_static_figure_draws_a_row_per_group_with_the_controls_in_each(tmp_path):
    families = {f"{f}{k}": f.upper() for f in "ab" for k in range(5)}  # two families of five: no panel holds both
    names = [*families, "random"]
    table = pd.concat([_table(curve_values("gradient", 4), method=m) for m in names], ignore_index=True)
    summary = curves.curve_summary(table, n_boot=50, seed=0)
    written = curves.curves_figure(summary, ["deletion"], names, {"random"}, {}, "t", tmp_path / "c.png", families)
    svg = written[1].read_text()
    assert svg.count("random (control)") == 2  # the control's legend entry in both rows
    assert all(svg.count(f">{m}<") == 1 for m in families)  # each method in one row only
