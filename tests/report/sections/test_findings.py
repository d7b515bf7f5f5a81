"""The findings section: the overview matrix (verdicts and family ranks), the best method per family, the claims
tally with inconclusive claims apart, and the controls' self-test, read from the other sections' tables."""

from __future__ import annotations

import pandas as pd
import pytest

from salbench.report.claims import counts
from salbench.report.sections.findings import check_status, claim_tally, self_test

from ..synthetic import MODELS
from .section_helpers import render, run
from .study_sections import empty_sections, shared_sections


@pytest.fixture(scope="module")
def sections(tmp_path_factory):
    return shared_sections(tmp_path_factory)


def _context(sections):
    import json

    _, folders = sections
    return json.loads((folders["findings"] / "context.json").read_text())


def test_overview_matrix_reads_the_verdicts_and_family_ranks(sections):
    context = _context(sections)
    first, second = context["pairs"]
    assert (first["dataset"], first["model"], second["model"]) == ("shapes", MODELS[0], MODELS[1])
    kinds = [(c["kind"], c["name"]) for c in first["columns"]]
    assert kinds == [("check", "model_sensitivity"), ("check", "top_layer_sensitivity"),
                     ("family", "localisation"), ("family", "faithfulness")]
    assert first["columns"][0]["trust"] == "validated" and first["columns"][0]["href"] == f"#sanity-shapes--{MODELS[0]}"
    rows = {r["method"]: r for r in first["rows"]}
    assert [r["method"] for r in first["rows"]][-2:] == ["edges", "random"]  # the controls last
    assert rows["edges"]["cells"][0]["status"] == "fail" and rows["gradient"]["cells"][0]["status"] == "pass"
    # the family cell: mean rank over the family's metrics, coloured by whether it beats the best control
    _, folders = sections
    ranks = pd.read_parquet(folders["ranks"] / "table.parquet")
    mine = ranks[(ranks["model"] == MODELS[0]) & (ranks["method"] == "gradcam") & (ranks["metric"] == "pointing_game")]
    assert rows["gradcam"]["cells"][2]["rank"] == pytest.approx(float(mine["rank"].iloc[0]))
    assert rows["edges"]["cells"][2]["status"] == ""  # a control is the baseline, not judged against itself
    assert not second["columns"][0]["kind"] == "check"  # no sanity check ran on the second model
    best = {b["family"]: b["method"] for b in first["best"]}
    assert set(best.values()) <= {"gradient", "gradcam"}  # never a control


def test_tally_and_self_test_on_the_first_screen(sections):
    config, folders = sections
    context = _context(sections)
    tally = {c["outcome"]: c["n"] for c in context["claims"]["counts"]}
    claims = pd.read_parquet(folders["claims"] / "table.parquet")
    assert sum(tally.values()) == context["claims"]["total"] == claims["id"].nunique()
    assert tally["not run"] == counts(claims)["not run"]
    (edges,) = context["self_test"]["controls"]
    assert (edges["method"], edges["registered"], edges["fails"], edges["must_fail"]) == ("edges", "sobel", 2, 2)
    assert context["self_test"]["ok"]
    html = render("findings", context, config)
    assert 'href="#claims"' in html and 'href="#sanity"' in html and 'href="#leaderboard"' in html
    assert '<a class="method" href="methods/gradient.html">gradient</a>' in html
    assert "fails 2 of 2 checks it must fail" in html and "not run" in html


def _claim(cid: str, outcome: str, decisive, model: str = "m") -> dict:
    return {"id": cid, "model": model, "outcome": outcome, "decisive": decisive}


def test_claim_tally_sets_undecided_claims_apart():
    table = pd.DataFrame([
        _claim("a", "reproduced", True), _claim("a", "reproduced", True, "n"),
        _claim("b", "reproduced", False),  # the interval crosses: inconclusive
        _claim("c", "not reproduced", True), _claim("c", "reproduced", True, "n"),
        _claim("d", "not run", pd.NA),
        _claim("e", "not reproduced", False),  # not reproduced, but the interval disagrees
    ]).astype({"decisive": "boolean"})
    tally = {c["outcome"]: c["n"] for c in claim_tally(table)["counts"]}
    assert tally == {"reproduced": 1, "not reproduced": 1, "inconclusive": 2, "not run": 1}
    # the claims section's tally (no inconclusive) counts b as reproduced and e as not reproduced
    assert counts(table) == {"reproduced": 2, "not reproduced": 2, "not run": 1}


def _verdict(method: str, check: str, passed: bool, name: str, trustworthy=True, decisive=True) -> dict:
    return {"method": method, "method_name": name, "check": check, "passed": passed, "decisive": decisive,
            "trustworthy": trustworthy, "rewards_noise": None}


def test_self_test_names_a_control_that_passes_a_check_it_must_fail():
    verdicts = pd.DataFrame([
        _verdict("edges", "model_sensitivity", True, "sobel", trustworthy=False),
        _verdict("edges", "emprt", False, "sobel"),
        _verdict("prior", "input_sensitivity", False, "centre"),
        _verdict("gradient", "model_sensitivity", True, "gradient", trustworthy=False),
    ])
    test = self_test(verdicts)
    assert not test["ok"] and test["untrusted"] == 1 and test["validated"] == 2
    by_method = {c["method"]: c for c in test["controls"]}
    assert by_method["edges"]["passes"] == ["model_sensitivity"] and by_method["edges"]["fails"] == 1
    assert by_method["prior"] == {"method": "prior", "registered": "centre", "must_fail": 1, "fails": 1, "passes": []}
    assert check_status(verdicts.iloc[3].to_dict()) == "untrusted"  # a pass of an untrusted check is not a pass
    assert check_status({**verdicts.iloc[1].to_dict(), "decisive": False}) == "inconclusive"


def test_static_overview_figure_per_pair(sections):
    _, folders = sections
    context = _context(sections)
    for pair in context["pairs"]:
        assert pair["png"] == f"figures/overview_shapes_{pair['model']}.png"
        assert (folders["findings"] / pair["png"]).stat().st_size > 5_000


def test_nothing_to_summarise_gives_an_empty_section(tmp_path):
    needed = empty_sections(tmp_path / "needed", ("leaderboard", "ranks", "sanity", "claims"))
    _, context = run("findings", tmp_path, {"methods": {}}, {}, needed)
    assert context == {"empty": "Nothing to summarise: the study scored no method and ran no sanity check."}
