"""The report on a small synthetic study: every section, relative images, right numbers, reproducible."""

import re
from pathlib import Path

import numpy as np
import pandas as pd

from salbench.report import build_report
from salbench.report.tables import aggregate, bootstrap_ci

from .synthetic import HAND_TARGETS, HAND_VALUES, METHODS, METRIC_INFO, MODELS, make_study


def test_report_has_every_method_metric_and_section(tmp_path):
    study = make_study(tmp_path)
    index = build_report(**study.kwargs)
    html = index.read_text()
    for name in [*METHODS, *METRIC_INFO, *MODELS]:
        assert name in html
    for heading in ("Overview", "Leaderboard", "Example maps"):
        assert heading in html
    sources = re.findall(r'<img[^>]+src="([^"]+)"', html)
    assert sources, "no figures"
    for src in sources:
        assert not src.startswith(("/", "http")), src
        assert (index.parent / src).is_file(), src
    assert "http://" not in html and "https://" not in html


def test_summary_values_aggregate_as_declared(tmp_path):
    study = make_study(tmp_path)
    build_report(**study.kwargs)
    summary = pd.read_parquet(tmp_path / "tables" / "summary.parquet")
    row = summary.query("model == 'cnn_a' and method == 'gradient' and metric == 'pointing_game'").iloc[0]
    # class 0: 4/4 hits, class 1: 0/2 (one NaN excluded), class 2: 2/4 (one NaN excluded)
    assert row["value"] == np.mean([1.0, 0.0, 0.5])
    assert row["n_excluded"] == 2 and row["n_items"] == 10
    assert row["ci_low"] <= row["value"] <= row["ci_high"]
    plain_mean = np.nanmean(HAND_VALUES)
    assert plain_mean != row["value"]


def test_aggregate_and_bootstrap_on_hand_made_values():
    keep = ~np.isnan(HAND_VALUES)
    values, targets = HAND_VALUES[keep], HAND_TARGETS[keep]
    assert aggregate(values, targets, "mean") == values.mean()
    assert aggregate(values, targets, "class_mean") == 0.5
    low, high = bootstrap_ci(np.full(20, 0.3), np.zeros(20, dtype=int), "mean", 200, np.random.default_rng(0))
    np.testing.assert_allclose([low, high], [0.3, 0.3])


def test_report_is_reproducible(tmp_path):
    first = build_report(**make_study(tmp_path / "a").kwargs).read_text()
    second = build_report(**make_study(tmp_path / "b").kwargs).read_text()
    assert first.replace(str(tmp_path / "a"), "") == second.replace(str(tmp_path / "b"), "")
