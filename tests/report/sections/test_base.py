"""The section contract: registry, the atomic section folder with its context, and the assembled page."""

import json
import re

import numpy as np
import pandas as pd
import pytest

from salbench.report import assemble
from salbench.report.sections import (SECTIONS, Section, SectionContext, describe_sections, get_section,
                                      list_sections, register_section, run_section)
from salbench.report.sections.base import context_json
from salbench.store import read_table


def _toy_aggregate(ctx: SectionContext) -> dict:
    frame = pd.DataFrame({"method": ["a", "b<i>"], "value": [0.5, np.float64(0.25)]})
    csv = ctx.write_table(frame)
    ctx.figure("toy.png").write_bytes(b"png")
    return {"rows": frame.to_dict("records"), "csv": csv, "n": np.int64(2), "missing": float("nan")}


@pytest.fixture
def toy():
    """A registered section with its own template folder entry (removed afterwards)."""
    section = register_section(Section(name="toy_section", title="Toy", description="a toy section", order=-1,
                                       aggregate=_toy_aggregate, inputs=("scores",), template="sections/toy.html.j2"))
    yield section
    SECTIONS._entries.pop("toy_section")


def test_a_section_is_a_registry_entry(toy):
    assert get_section("toy_section") is toy and list_sections()[0] == "toy_section"
    assert dict(describe_sections())["toy_section"].startswith("a toy section [Toy; reads: scores")
    with pytest.raises(ValueError, match="already registered"):
        register_section(toy)
    with pytest.raises(KeyError, match="unknown section 'nope'"):
        get_section("nope")


def test_declaration_errors_name_the_section():
    with pytest.raises(ValueError, match="section 'x': unknown input groups nonsense"):
        Section(name="x", title="X", description="", order=0, aggregate=dict, inputs=("nonsense",))
    with pytest.raises(ValueError, match="lower-case identifier"):
        Section(name="Bad-Name", title="X", description="", order=0, aggregate=dict)
    assert Section(name="x", title="X", description="", order=0, aggregate=dict).template == "sections/x.html.j2"


def test_run_section_writes_its_folder_context_and_table(toy, tmp_path):
    out = tmp_path / "sections" / "toy_section"
    ctx = SectionContext(study="s", config={}, inputs={"scores": []}, out=out)
    assert run_section("toy_section", ctx, table=tmp_path / "tables" / "toy_section.parquet") == out
    context = json.loads((out / "context.json").read_text())
    assert context == {"csv": "toy_section.csv", "missing": None, "n": 2,
                       "rows": [{"method": "a", "value": 0.5}, {"method": "b<i>", "value": 0.25}]}
    assert (out / "figures" / "toy.png").is_file() and (out / "toy_section.csv").is_file()
    assert read_table(tmp_path / "tables" / "toy_section.parquet")["method"].tolist() == ["a", "b<i>"]
    assert not [p for p in out.parent.iterdir() if p.name != "toy_section"]  # no temporary left


def test_a_failing_aggregate_leaves_no_folder(tmp_path):
    def broken(ctx):
        ctx.figure("half.png").write_bytes(b"")
        raise RuntimeError("boom")

    register_section(Section(name="broken_section", title="B", description="", order=0, aggregate=broken))
    try:
        with pytest.raises(RuntimeError, match="boom"):
            run_section("broken_section", SectionContext("s", {}, {}, tmp_path / "broken_section"))
    finally:
        SECTIONS._entries.pop("broken_section")
    assert list(tmp_path.iterdir()) == []


def test_context_that_is_not_json_names_the_section():
    with pytest.raises(TypeError, match="section 'x': its context holds a set"):
        context_json("x", {"bad": {1, 2}})


def test_empty_section_gets_an_empty_table(toy, tmp_path):
    register_section(Section(name="empty_section", title="E", description="", order=0,
                             aggregate=lambda ctx: {"empty": "nothing ran"}))
    try:
        run_section("empty_section", SectionContext("s", {}, {}, tmp_path / "e"), table=tmp_path / "e.parquet")
    finally:
        SECTIONS._entries.pop("empty_section")
    assert read_table(tmp_path / "e.parquet")["empty"].tolist() == ["nothing ran"]


def test_reading_an_undeclared_section_is_an_error(tmp_path):
    ctx = SectionContext("s", {}, {}, tmp_path, needed={"ranks": tmp_path / "r"}, name="x")
    with pytest.raises(ValueError, match="section 'x' reads section 'claims', which it does not declare"):
        ctx.context_of("claims")


def test_page_renders_sections_in_order_escaped_with_assets(toy, tmp_path, monkeypatch):
    templates = tmp_path / "templates"
    (templates / "sections").mkdir(parents=True)
    (templates / "sections" / "toy.html.j2").write_text(
        '{% import "macros.html.j2" as m with context %}'
        '{{ m.table(section.rows, [{"key": "method", "label": "method", "format": "method"},'
        ' {"key": "value", "num": true, "format": "fmt"}]) }}'
        '{{ m.figure(asset(s, "figures/toy.png"), caption="a toy") }}{{ m.download(s, section.csv) }}')
    package = assemble.environment().loader
    monkeypatch.setattr(assemble, "environment", _with_extra_templates(templates, package))
    folder = tmp_path / "toy_section"
    run_section("toy_section", SectionContext("s", {}, {}, folder))
    index = assemble.render_page("s", {"toy_section": folder}, tmp_path / "report", {"methods": {}})
    text = index.read_text()
    assert '<section id="toy_section">' in text and "<h2>Toy</h2>" in text
    assert "b&lt;i&gt;" in text and "b<i>" not in text  # autoescaped
    assert '<td class="num">0.250</td>' in text
    links = [link for link in re.findall(r'(?:src|href)="([^"#][^"]*)"', text) if not link.startswith("data:")]
    assert len(links) == 3  # the figure (image and full-size link) and the CSV
    for link in links:
        assert (index.parent / link).is_file(), link
    assert (index.parent / "figures" / "toy_section" / "toy.png").is_file()
    assert (index.parent / "tables" / "toy_section" / "toy_section.csv").is_file()
    assert not (index.parent / "tables" / "toy_section" / "context.json").exists()


def test_an_empty_section_keeps_its_anchor_and_says_why(tmp_path):
    register_section(Section(name="empty_section", title="Empty", description="", order=0,
                             aggregate=lambda ctx: {"empty": "No <b>checks</b> ran."}))
    try:
        run_section("empty_section", SectionContext("s", {}, {}, tmp_path / "e"))
        text = assemble.render_page("s", {"empty_section": tmp_path / "e"}, tmp_path / "r", {}).read_text()
    finally:
        SECTIONS._entries.pop("empty_section")
    assert '<a href="#empty_section">Empty</a>' in text and '<section id="empty_section">' in text
    assert "No &lt;b&gt;checks&lt;/b&gt; ran." in text


def _with_extra_templates(folder, package_loader):
    import jinja2

    def environment():
        env = _ORIGINAL_ENVIRONMENT()
        env.loader = jinja2.ChoiceLoader([jinja2.FileSystemLoader(folder), package_loader])
        return env

    return environment


_ORIGINAL_ENVIRONMENT = assemble.environment


def test_a_sections_rule_gets_only_its_config_keys():
    from salbench.report.sections.base import ALL_CONFIG_KEYS, section_config

    config = {"study": "s", "seed": 1, "report": {"bootstrap": 10, "claims": "c.yaml"}, "methods": {"a": {}}}
    keys = Section(name="x", title="X", description="", order=0, aggregate=dict,
                   config_keys=("seed", "report.bootstrap", "grid"))
    assert section_config(keys, config) == {"study": "s", "seed": 1, "report": {"bootstrap": 10}}
    everything = Section(name="x", title="X", description="", order=0, aggregate=dict, config_keys=ALL_CONFIG_KEYS)
    assert section_config(everything, config) == config


def test_needed_sections_run_first():
    from salbench.report.sections.base import dependency_order

    order = dependency_order()
    assert sorted(order) == sorted(list_sections())
    for name in order:
        assert all(order.index(need) < order.index(name) for need in get_section(name).needs)
    assert dependency_order(["rank_agreement"]) == ["ranks", "leaderboard", "rank_agreement"]
