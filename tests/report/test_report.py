"""The study report: a self-contained, byte-reproducible folder assembled from section folders; the tables'
aggregation rules on hand-made scores."""

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from salbench.cli import main
from salbench.report.assemble import render_page, run_sections
from salbench.report.sections import get_section, list_sections
from salbench.report.tables import aggregate, load_scores, mark_leaders, summarise
from salbench.store import write_table

from .conftest import section_inputs
from .synthetic import HAND_TARGETS, HAND_VALUES, METHODS


def _links(text: str) -> list[str]:
    return [link for link in re.findall(r'\s(?:src|href)="([^"]+)"', text) if not link.startswith(("#", "data:"))]


def test_report_folder_is_self_contained(core_sections):
    _, _, index = core_sections
    text = index.read_text()
    links = _links(text)
    assert len(re.findall(r"<img\s", text)) == 2 + 2 + 2  # metrics figure per family, a ranks and a tau map per model
    for target in links:
        assert not target.startswith(("/", "http:", "https:", "file:", "//")), target
        assert (index.parent / target).is_file(), target
    assert re.search(r"https?:", text) is None


def test_every_navigation_anchor_exists_in_page_order(core_sections):
    _, folders, index = core_sections
    text = index.read_text()
    anchors = re.findall(r'<li><a href="#([^"]+)">', text)
    assert anchors == sorted(folders, key=lambda n: (get_section(n).order, n))
    for anchor in anchors:
        assert f'<section id="{anchor}">' in text


def test_report_is_byte_reproducible(core_sections, tmp_path):
    kwargs, folders, index = core_sections
    first = {p.relative_to(index.parent): p.read_bytes() for p in sorted(index.parent.rglob("*")) if p.is_file()}
    again = run_sections("synthetic", kwargs["config"], section_inputs(kwargs), tmp_path / "sections",
                         names=["ranks", "leaderboard"])
    second_index = render_page("synthetic", {**folders, **again}, tmp_path / "report", kwargs["config"])
    second = {p.relative_to(second_index.parent): p.read_bytes()
              for p in sorted(second_index.parent.rglob("*")) if p.is_file()}
    assert first.keys() == second.keys()
    for name in first:
        assert first[name] == second[name], name


def test_cli_runs_a_section_and_assembles_the_page(core_sections, tmp_path, capsys):
    kwargs, _, _ = core_sections
    config = json.dumps(kwargs["config"])
    assert main(["section", "ranks", "--config-json", config, "--in", "scores", *map(str, kwargs["score_files"]),
                 "--in", "grids", "--out", str(tmp_path / "ranks"), "--table", str(tmp_path / "ranks.parquet")]) == 0
    assert main(["report", "--config-json", config, "--sections", f"ranks={tmp_path / 'ranks'}",
                 "--html", str(tmp_path / "report" / "index.html")]) == 0
    assert '<section id="ranks">' in (tmp_path / "report" / "index.html").read_text()
    assert (tmp_path / "ranks.parquet").is_file()
    assert main(["section", "ranks", "--config-json", config, "--in", "nonsense", "--out", str(tmp_path / "x")]) == 2
    assert "unknown input groups nonsense" in capsys.readouterr().err


def test_list_sections_prints_every_section_in_page_order(capsys):
    assert main(["list", "sections"]) == 0
    names = [line.split()[0] for line in capsys.readouterr().out.splitlines()]
    assert names == list_sections()
    assert {"overview", "leaderboard", "ranks", "rank_agreement"} <= set(names)


def test_summary_follows_each_metrics_aggregate():
    scorable = ~np.isnan(HAND_VALUES)
    assert aggregate(HAND_VALUES[scorable], HAND_TARGETS[scorable], "mean") == pytest.approx(0.6)
    assert aggregate(HAND_VALUES[scorable], HAND_TARGETS[scorable], "class_mean") == pytest.approx(0.5)


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


def test_report_package_and_section_declarations_do_not_import_torch_or_matplotlib():
    """The Snakefile imports the section registry on every DAG build: its declarations must stay cheap."""
    code = ("import sys, salbench.report, salbench.report.sections, salbench.report.assemble; "
            "heavy = {'torch', 'matplotlib', 'seaborn'} & set(sys.modules); assert not heavy, heavy")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).parent)


def test_synthetic_methods_all_appear(core_sections):
    _, _, index = core_sections
    text = index.read_text()
    for method in METHODS:
        assert f">{method}<" in text
