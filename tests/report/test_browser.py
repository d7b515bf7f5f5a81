"""The assembled report in headless Chromium at 1400 x 900 (built from the synthetic study's section folders, no
workflow run): the first screen shows the findings, every navigation anchor and in-page link has its target, every
image loads, no console error; a method page shows its card with evidence links that resolve; the interactive
curves figure draws offline and toggling a method in its legend changes what is drawn; the published archive
unpacked elsewhere renders the same page. Saves screenshots under test-artifacts/."""

from __future__ import annotations

import shutil
import tarfile
from pathlib import Path

import pytest

from salbench.report.assemble import render_page
from salbench.report.publish import publish

from .sections.study_sections import shared_sections

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts"
VIEWPORT = {"width": 1400, "height": 900}


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    """(config, section folders, index.html) of the synthetic study's report."""
    config, folders = shared_sections(tmp_path_factory)
    return config, folders, render_page("synthetic", folders, tmp_path_factory.mktemp("browser") / "report", config)


def _open(browser, page_path: Path) -> tuple[object, list[str]]:
    """A page showing ``page_path`` (loaded), and the console errors, page errors and failed requests it produced."""
    page = browser.new_page(viewport=VIEWPORT)
    problems: list[str] = []
    page.on("console", lambda message: problems.append(f"console: {message.text}") if message.type == "error" else None)
    page.on("pageerror", lambda error: problems.append(f"page error: {error}"))
    page.on("requestfailed", lambda request: problems.append(f"request failed: {request.url}"))
    page.goto(page_path.as_uri(), wait_until="load")
    return page, problems


def _check(page, problems: list[str]) -> dict[str, object]:
    """Assert the page is whole (images load, nav anchors and in-page links have targets, no horizontal scroll, no
    console error); return its images and visible text for comparison."""
    page.evaluate("document.querySelectorAll('img[loading=lazy]').forEach(i => { i.loading = 'eager'; })")
    page.wait_for_function("Array.from(document.images).every(i => i.complete)")
    images = page.eval_on_selector_all(
        "img", "els => els.map(e => ({src: e.getAttribute('src'), ok: e.complete && e.naturalWidth > 0}))")
    broken = [i["src"] for i in images if not i["ok"]]
    assert not broken, f"images that did not load: {broken}"
    ids = set(page.eval_on_selector_all("[id]", "els => els.map(e => e.id)"))
    nav = page.eval_on_selector_all("nav a[href^='#']", "els => els.map(e => e.getAttribute('href').slice(1))")
    assert nav, "the page has no navigation"
    links = page.eval_on_selector_all("a[href^='#']", "els => els.map(e => e.getAttribute('href').slice(1))")
    dangling = sorted(set(links) - ids)
    assert not dangling, f"in-page links without a target: {dangling}"
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= VIEWPORT["width"], f"the page is {width} px wide: something is wider than the window"
    assert not problems, problems
    return {"images": [i["src"] for i in images], "text": page.inner_text("body")}


def _local_links(page, here: Path) -> list[tuple[Path, str]]:
    """(file, fragment) of every link to a file of the report folder."""
    hrefs = page.eval_on_selector_all("a[href]", "els => els.map(e => e.getAttribute('href'))")
    out = []
    for href in hrefs:
        if href.startswith(("#", "http:", "https:", "data:")):
            continue
        target, _, fragment = href.partition("#")
        out.append(((here.parent / target).resolve(), fragment))
    return out


def test_first_screen_shows_the_findings(report, browser, tmp_path):
    config, folders, index = report
    page, problems = _open(browser, index)
    shown = _check(page, problems)
    assert page.title().startswith("salbench report")
    nav = page.eval_on_selector_all("nav a[href^='#']", "els => els.map(e => e.getAttribute('href').slice(1))")
    assert nav[0] == "findings" and {"cards", "curves", "claims", "sanity"} <= set(nav)
    for selector in ("#findings-claims", "#findings-controls", "#findings-best", ".overview-matrix tbody tr"):
        box = page.locator(selector).first.bounding_box()
        assert box is not None and box["y"] + min(box["height"], 60) <= VIEWPORT["height"], \
            f"{selector} is not on the first screen: {box}"
    claims = page.inner_text("#findings-claims")
    assert "reproduced" in claims and "inconclusive" in claims and "not run" in claims
    assert "edges" in page.inner_text("#findings-controls") and "fails 2 of 2" in page.inner_text("#findings-controls")
    for file, fragment in _local_links(page, index):  # method pages, tables, card JSON, figures
        assert file.is_file(), f"a link to a missing file: {file}"
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "report-first-screen.png"))
    page.close()

    archive = publish(study="synthetic", version="1", config=config, report_dir=index.parent,
                      tables_dir=folders["findings"].parent.parent / "tables", out=tmp_path / "synthetic-1.tar.gz")
    with tarfile.open(archive) as tar:
        tar.extractall(tmp_path / "elsewhere", filter="data")
    moved, problems = _open(browser, tmp_path / "elsewhere" / "synthetic-1" / "report" / "index.html")
    assert _check(moved, problems) == shown
    moved.close()


def test_method_page_shows_its_card_with_evidence(report, browser):
    _, _, index = report
    path = index.parent / "methods" / "gradcam.html"
    page, problems = _open(browser, path)
    _check(page, problems)
    rows = page.locator("table.card tbody tr")
    assert rows.count() == 10
    text = page.inner_text("table.card")
    assert "model sensitivity" in text and "s per item" in text and "pass" in text
    for file, fragment in _local_links(page, path):
        assert file.is_file(), f"a link to a missing file: {file}"
        if fragment and file.suffix == ".html":
            assert f'id="{fragment}"' in file.read_text(encoding="utf-8"), f"link {file.name}#{fragment} has no target"
    assert (index.parent / "cards" / "gradcam.json").is_file()
    page.wait_for_selector("#curves .js-plotly-plot")
    assert page.locator("#curves .js-plotly-plot").count() == 2  # its curves on each model, drawn
    page.close()


def _drawn(page, figure: str) -> int:
    """How many line traces the figure draws (hidden ones are not drawn)."""
    return page.evaluate(f"document.querySelectorAll('#{figure} .scatterlayer .trace .js-line').length")


def test_interactive_curves_toggle_a_method(report, browser):
    _, _, index = report
    page, problems = _open(browser, index)
    figure = "curves-shapes--cnn_a-figure"
    page.wait_for_selector(f"#{figure} .legend .traces")
    before = _drawn(page, figure)
    assert before >= 4  # four methods (and their bands)
    page.locator(f"#{figure} .legend .traces", has_text="gradcam").first.click()
    page.wait_for_function(f"document.getElementById('{figure}').data.some(t => t.name === 'gradcam' && "
                           "t.visible === 'legendonly')")
    assert _drawn(page, figure) < before
    page.evaluate(f"(gd => Plotly.Fx.hover(gd, [{{curveNumber: gd.data.findIndex(t => t.name === 'gradient' && "
                  f"t.hovertemplate), pointNumber: 1}}]))(document.getElementById('{figure}'))")
    hover = page.evaluate(f"document.querySelector('#{figure} .hoverlayer').textContent")
    assert "gradient" in hover and "[" in hover  # the value with its band
    page.screenshot(path=str(ARTIFACTS / "report-curves.png"), full_page=False)
    assert not problems, problems
    page.close()
