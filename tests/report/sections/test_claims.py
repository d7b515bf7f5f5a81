"""The claims section: the synthetic study's claims evaluated on the leaderboard's summary and the sanity
verdicts it needs, with the tally, the per-method claims and the page's anchors."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from salbench.report.sections import MAIN_TABLE, get_section
from salbench.report.tables import load_scores, summarise, write_frame

from ..conftest import section_inputs
from ..synthetic import METRIC_INFO
from .section_helpers import render, run


def _needed(tmp_path, study) -> dict:
    """The leaderboard's folder (its main table: the summary) and an empty sanity section's."""
    config = study.kwargs["config"]
    board, checks = tmp_path / "needed" / "leaderboard", tmp_path / "needed" / "sanity"
    summary = summarise(load_scores(study.kwargs["score_files"]), METRIC_INFO, {"random", "edges"}, n_boot=200,
                        seed=config["seed"])
    write_frame(summary, board / MAIN_TABLE)
    (board / "context.json").write_text("{}")
    checks.mkdir(parents=True)
    (checks / "context.json").write_text(json.dumps({"empty": "No sanity checks ran."}))
    return {"leaderboard": board, "sanity": checks}


def test_section_evaluates_the_synthetic_claims(tmp_path, study):
    config = study.kwargs["config"]
    folder, context = run("claims", tmp_path, config, section_inputs(study.kwargs), _needed(tmp_path, study))
    table = pd.read_csv(folder / context["csv"]).set_index("id")
    value = table.loc["gradient-value"]
    assert value["outcome"] == "reproduced" and value["ours"] == pytest.approx(0.5)  # hand-worked class mean
    assert table.loc["gradient-value-off", "outcome"] == "not reproduced"
    assert table.loc["voc-only", "outcome"] == "not run" and "voc07" in table.loc["voc-only", "note"]
    assert table.loc["rise-verdict", "outcome"] == "not run" and "rise" in table.loc["rise-verdict", "note"]
    compare = table.loc["gradcam-vs-gradient"]
    assert set(compare["model"]) == {"cnn_a", "cnn_b"}
    assert ((compare["ours"] > 0) == (compare["outcome"] == "reproduced")).all()
    reference = table.loc["synthetic-reference-0"]  # the config's references, folded in as value claims
    assert reference["model"] == "cnn_b" and reference["evidence"] == "config"
    assert sum(context["tally"].values()) == table.index.nunique() == len(context["claims"])
    assert context["claims_file"].endswith("/claims.yaml") and not context["claims_file"].startswith("/")
    assert {c["id"] for c in context["by_method"]["gradient"]["claims"]} >= {"gradient-value", "gradcam-vs-gradient"}
    html = render("claims", context, config)
    assert all(f'id="claim-{c}"' in html for c in table.index.unique())
    assert f"<strong>{context['tally']['reproduced']}</strong> claims reproduced" in html
    assert '<a class="method" href="methods/gradcam.html">gradcam</a> vs' in html


def test_claims_rerun_on_the_claims_file_and_references_only():
    section = get_section("claims")
    assert "claims" in section.inputs and "references" in section.config_keys
    assert set(section.needs) == {"leaderboard", "sanity"} and "curves" not in section.inputs


def test_no_claims_give_an_empty_section(tmp_path, study):
    config = {**study.kwargs["config"], "references": []}
    _, context = run("claims", tmp_path, config, {"claims": [], "scores": []}, _needed(tmp_path, study))
    assert "No claims were given" in context["empty"]


def test_claims_rerun_on_their_own_config_keys_only():
    from salbench.report.sections.base import section_config

    section = get_section("claims")
    config = {"study": "s", "seed": 1, "report": {"bootstrap": 50, "examples": 3, "claims": "c.yaml"},
              "references": [], "curves": {"x": 1}, "methods": {}}
    assert section_config(section, config) == {"study": "s", "seed": 1, "report": {"bootstrap": 50},
                                               "references": [], "methods": {}}
