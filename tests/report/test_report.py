"""The study report: right numbers on hand-made scores, a self-contained folder, byte-reproducible output."""

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from salbench.report import build_report
from salbench.report.tables import aggregate, bootstrap_ci, load_scores, mark_leaders, summarise
from salbench.store import write_table

from .synthetic import HAND_TARGETS, HAND_VALUES, METHODS, METRIC_INFO, MODELS, SKIPPED


def test_report_names_every_method_metric_and_pair(built):
    study, index = built
    assert index == study.kwargs["out_dir"] / "index.html" and index.is_file()
    text = index.read_text()
    for name in [*METHODS, *METRIC_INFO]:
        assert name in text
    for model in MODELS:
        assert f'id="leaderboard-shapes--{model}"' in text and f'id="examples-shapes--{model}"' in text
    assert "<pre>" in text and "bootstrap: 200" in text  # config shown as YAML


def test_skipped_metrics_are_noted_under_their_models_leaderboard(built):
    _, index = built
    sections = re.split(r'<section id="leaderboard-shapes--', index.read_text())
    by_model = {model: next(s for s in sections if s.startswith(model)) for model in MODELS}
    (metric, reason), = SKIPPED.items()
    note = f"metric <code>{metric}</code> not computed on shapes: {reason}".replace("'", "&#x27;")
    assert note in by_model[MODELS[-1]]
    assert metric not in by_model[MODELS[0]]


def test_report_folder_is_self_contained(built):
    study, index = built
    text = index.read_text()
    sources = re.findall(r'<img[^>]*\ssrc="([^"]+)"', text)
    assert len(sources) == 3 + 4 * len(MODELS)  # metrics, ranks, agreement; examples, gallery, grids, curves per model
    links = re.findall(r'\shref="([^"]+)"', text)
    for target in sources + [link for link in links if not link.startswith(("#", "data:"))]:
        assert not target.startswith(("/", "http:", "https:", "file:", "//")), target
        assert (index.parent / target).is_file(), target
    assert "<script" not in text and re.search(r"https?:", text) is None
    figures = study.kwargs["out_dir"] / "figures"
    assert {p.name for p in figures.iterdir()} == {
        "metrics.png", "metrics.svg", "ranks.png", "ranks.svg", "rank_agreement.png", "rank_agreement.svg",
        *(f"examples_shapes_{m}.png" for m in MODELS), *(f"gallery_shapes_{m}.png" for m in MODELS),
        *(f"grid_examples_shapes_{m}.{ext}" for m in MODELS for ext in ("png", "svg")),
        *(f"curves_shapes_{m}.{ext}" for m in MODELS for ext in ("png", "svg"))}
    tables = study.kwargs["tables_dir"]
    assert {"scores.parquet", "summary.parquet", "summary.csv", "ranks.csv", "rank_agreement.csv", "claims.csv",
            "curves.csv"} <= {
        p.name for p in tables.iterdir()}


def test_summary_follows_each_metrics_aggregate_and_counts_excluded_items(built):
    study, _ = built
    summary = pd.read_parquet(study.kwargs["tables_dir"] / "summary.parquet")
    row = summary.set_index(["model", "method", "metric"]).loc[("cnn_a", "gradient", "pointing_game")]
    # classes 0, 1, 2 hit 4/4, 0/2 and 2/4 of their scorable items: class mean 0.5, item mean 6/10
    assert row["aggregate"] == "class_mean"
    assert row["value"] == pytest.approx(0.5)
    assert row["n_items"] == 10 and row["n_excluded"] == 2 and row["n_classes"] == 3
    scorable = ~np.isnan(HAND_VALUES)
    assert aggregate(HAND_VALUES[scorable], HAND_TARGETS[scorable], "mean") == pytest.approx(0.6)
    scores = pd.read_parquet(study.kwargs["tables_dir"] / "scores.parquet")
    assert len(scores) == len(MODELS) * len(METHODS) * len(METRIC_INFO) * len(HAND_TARGETS)


def test_excluded_items_are_shown_in_the_leaderboard(built):
    _, index = built
    assert "(2 excluded)" in index.read_text()


def test_bootstrap_interval_brackets_the_value(built):
    study, _ = built
    summary = pd.read_parquet(study.kwargs["tables_dir"] / "summary.parquet")
    assert (summary["ci_low"] <= summary["value"]).all() and (summary["value"] <= summary["ci_high"]).all()
    assert (summary["ci_low"] < summary["ci_high"]).all()


@pytest.mark.parametrize("how", ["mean", "class_mean"])
def test_vectorised_bootstrap_matches_a_plain_loop(how):
    rng = np.random.default_rng(3)
    values, targets = rng.random(40), rng.integers(0, 4, size=40)
    low, high = bootstrap_ci(values, targets, how, 300, np.random.default_rng(7))
    idx = np.random.default_rng(7).integers(0, 40, size=(300, 40))
    stats = [aggregate(values[i], targets[i], how) for i in idx]
    assert (low, high) == pytest.approx(tuple(np.quantile(stats, [0.025, 0.975])))


def test_leaders_respect_direction_and_controls():
    scores = pd.DataFrame({
        "dataset": "d", "model": "m", "method": ["a", "a", "b", "b", "random", "random"], "item": ["i", "j"] * 3,
        "target": 0, "metric": "deletion", "value": [0.1, 0.3, 0.5, 0.7, 0.4, 0.4]})
    summary = summarise(scores, {"deletion": {"aggregate": "mean", "higher_is_better": False}}, {"random"}, n_boot=100)
    flags = summary.set_index("method")
    assert flags.loc["a", "best"] and not flags.loc["b", "best"]  # lower is better
    assert bool(flags.loc["a", "beats_controls"])
    assert not flags.loc["b", "beats_controls"] and pd.isna(flags.loc["random", "beats_controls"])
    assert mark_leaders(summary, set())["beats_controls"].isna().all()


def test_scores_scored_twice_are_an_error(tmp_path):
    frame = pd.DataFrame({"dataset": "d", "model": "m", "method": "a", "item": ["i"], "target": [0],
                          "metric": "x", "value": [1.0]})
    write_table(frame, tmp_path / "s.parquet")
    with pytest.raises(ValueError, match="scored twice"):
        load_scores([tmp_path / "s.parquet", tmp_path / "s.parquet"])


def test_report_is_byte_reproducible(built):
    study, index = built
    first = {p.relative_to(index.parent): p.read_bytes() for p in sorted(index.parent.rglob("*")) if p.is_file()}
    build_report(**study.kwargs)
    second = {p.relative_to(index.parent): p.read_bytes() for p in sorted(index.parent.rglob("*")) if p.is_file()}
    assert first.keys() == second.keys()
    for name in first:
        assert first[name] == second[name], name


def test_report_package_does_not_import_torch():
    import subprocess
    import sys

    code = "import sys, salbench.report; assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).parent)
