"""The rendered report in headless Chromium: no console errors, every image loads, every section and in-page link
target is there; the published archive unpacked elsewhere renders the same page. Saves a screenshot."""

from __future__ import annotations

import shutil
import tarfile
from pathlib import Path

from salbench.report.html import SECTIONS
from salbench.report.publish import publish

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts"


def _open(browser, index: Path) -> tuple[object, list[str]]:
    """A page showing ``index`` (loaded), and the console errors, page errors and failed requests it produced."""
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    problems: list[str] = []
    page.on("console", lambda message: problems.append(f"console: {message.text}") if message.type == "error" else None)
    page.on("pageerror", lambda error: problems.append(f"page error: {error}"))
    page.on("requestfailed", lambda request: problems.append(f"request failed: {request.url}"))
    page.goto(index.as_uri(), wait_until="load")
    return page, problems


def _check(page, problems: list[str]) -> dict[str, object]:
    """Assert the page is whole; return its images and visible text for comparison."""
    images = page.eval_on_selector_all(
        "img", "els => els.map(e => ({src: e.getAttribute('src'), ok: e.complete && e.naturalWidth > 0}))")
    assert images, "the report shows no image"
    broken = [i["src"] for i in images if not i["ok"]]
    assert not broken, f"images that did not load: {broken}"
    ids = set(page.eval_on_selector_all("[id]", "els => els.map(e => e.id)"))
    missing = [anchor for anchor, _ in SECTIONS if anchor not in ids]
    assert not missing, f"sections missing: {missing}"
    links = page.eval_on_selector_all("a[href^='#']", "els => els.map(e => e.getAttribute('href').slice(1))")
    dangling = sorted(set(links) - ids)
    assert not dangling, f"in-page links without a target: {dangling}"
    assert page.title().startswith("salbench report")
    assert not problems, problems
    return {"images": [i["src"] for i in images], "text": page.inner_text("body")}


def test_report_renders_in_headless_chromium(built, browser, tmp_path):
    study, index = built
    page, problems = _open(browser, index)
    shown = _check(page, problems)
    assert "Published claims" in shown["text"] and "reproduced" in shown["text"]
    assert any(src.startswith("figures/curves_") for src in shown["images"]), "no deletion/insertion curves figure"
    screenshot = tmp_path / "report.png"
    page.screenshot(path=str(screenshot), full_page=True)
    page.close()
    assert screenshot.stat().st_size > 10_000
    ARTIFACTS.mkdir(exist_ok=True)
    shutil.copy(screenshot, ARTIFACTS / "report-synthetic.png")

    kw = study.kwargs
    archive = publish(study="synthetic", version="1", config=kw["config"], report_dir=kw["out_dir"],
                      tables_dir=kw["tables_dir"], out=tmp_path / "synthetic-1.tar.gz")
    with tarfile.open(archive) as tar:
        tar.extractall(tmp_path / "elsewhere", filter="data")
    moved, problems = _open(browser, tmp_path / "elsewhere" / "synthetic-1" / "report" / "index.html")
    assert _check(moved, problems) == shown
    moved.close()
