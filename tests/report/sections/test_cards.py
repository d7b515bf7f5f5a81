"""The cards section: a saliency card per method from the synthetic study's stores and section tables, written as
``public/cards/<method>.json`` and shown as the methods x attributes matrix and on each method's page."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from salbench.report.assemble import render_page
from salbench.report.cards import ATTRIBUTES

from ..synthetic import METHODS
from .section_helpers import render, run
from .study_sections import empty_sections, shared_sections


@pytest.fixture(scope="module")
def sections(tmp_path_factory):
    return shared_sections(tmp_path_factory)


def _cards(folders) -> dict:
    return {path.stem: json.loads(path.read_text()) for path in (folders["cards"] / "public" / "cards").glob("*.json")}


def test_a_card_per_method_filled_from_the_study(sections):
    _, folders = sections
    cards = _cards(folders)
    assert set(cards) == set(METHODS)
    context = json.loads((folders["cards"] / "context.json").read_text())
    assert context["by_method"]["gradcam"]["card"] == cards["gradcam"]  # the page and the file say the same
    for card in cards.values():
        assert [a["attribute"] for a in card["attributes"]] == [name for name, _ in ATTRIBUTES]
        assert sum(card["counts"].values()) == len(ATTRIBUTES)
        assert all(a["evidence"] for a in card["attributes"])
    status = {m: {a["attribute"]: a for a in card["attributes"]} for m, card in cards.items()}
    assert status["edges"]["model sensitivity"]["status"] == "fail"  # the edge detector ignores the model
    assert status["gradient"]["model sensitivity"]["status"] == "pass"
    assert status["random"]["determinism"]["summary"].startswith("seeded (seed 0 recorded)")  # catalog: takes a seed
    assert status["gradcam"]["model agnosticism"]["status"] == "fail"
    assert status["gradient"]["computational efficiency"]["summary"].startswith("0.125 s per item")  # 1.5 s / 12 items
    table = pd.read_csv(folders["cards"] / context["csv"])
    assert len(table) == len(METHODS) * len(ATTRIBUTES) and set(table["status"]) <= {"pass", "fail", "inconclusive"}


def test_matrix_and_method_page_link_the_card(sections, tmp_path):
    config, folders = sections
    context = json.loads((folders["cards"] / "context.json").read_text())
    html = render("cards", context, config)
    assert '<a class="method" href="methods/gradcam.html">gradcam</a>' in html
    assert 'href="cards/gradcam.json"' in html and "status-fail" in html
    index = render_page("synthetic", folders, tmp_path / "report", config)
    page = (index.parent / "methods" / "gradcam.html").read_text()
    assert '<section id="cards">' in page and 'id="about"' in page
    assert 'href="../index.html#sanity"' in page and 'href="../cards/gradcam.json"' in page
    assert page.index('id="cards"') < page.index('id="curves"')  # the card first
    assert '<script src="../assets/plotly.min.js"></script>' in page


def test_no_methods_give_an_empty_section(tmp_path):
    needed = empty_sections(tmp_path / "needed", ("leaderboard", "ranks", "sanity"))
    _, context = run("cards", tmp_path, {"methods": {}}, {"maps": []}, needed)
    assert context == {"empty": "No methods to describe: the study stored no maps and scored no method."}
