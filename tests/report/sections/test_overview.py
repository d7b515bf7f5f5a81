"""The overview section: provenance read from the stores, runtime per method, every job and the config."""

import yaml

from salbench.report.assemble import load_context
from salbench.store import read_table

from ..synthetic import METHODS, MODELS


def test_provenance_is_read_from_the_stores(core_sections):
    kwargs, folders, _ = core_sections
    context = load_context(folders["overview"])
    provenance = {row["field"]: row["value"] for row in context["provenance"]}
    assert provenance["torch"] == "2.14.1" and provenance["git revision"] == "abc123def456"
    assert provenance["data manifests (sha256)"] == "shapes: " + "ab" * 6
    assert provenance["bootstrap"].startswith("200 resamples of items, seed 0")
    assert context["n_jobs"] == len(MODELS) * len(METHODS) == len(read_table(folders["overview"] / "table.parquet"))
    assert {r["method"]: r["jobs"] for r in context["runtimes"]} == {m: len(MODELS) for m in METHODS}
    assert yaml.safe_load(context["config_yaml"]) == kwargs["config"]


def test_page_shows_the_config_and_links_methods(core_sections):
    _, _, index = core_sections
    text = index.read_text()
    assert "<pre>" in text and "bootstrap: 200" in text
    assert '<section id="overview">' in text and 'href="tables/overview/overview.csv"' in text


def test_no_maps_says_so(tmp_path):
    from salbench.report.sections import SectionContext, run_section

    run_section("overview", SectionContext("s", {}, {"maps": []}, tmp_path / "o"))
    assert load_context(tmp_path / "o") == {"empty": "No saliency maps to describe."}
