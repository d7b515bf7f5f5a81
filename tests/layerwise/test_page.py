"""The labelling page: reveal masks, a self-contained file, and a game played in headless Chromium."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest

from salbench.layerwise.labels import Q_PERCENT, RESIGN_STEP, ingest, read_label_file
from salbench.layerwise.page import reveal_frames, reveal_masks, write_labelling_page
from salbench.store import open_store

from .label_fixtures import CLASSES, write_stores


def test_reveal_masks_reveal_the_top_q_percent_nested():
    rng = np.random.default_rng(0)
    cmap = rng.random((20, 30))
    hard = reveal_masks(cmap, map_sigma=0.0, mask_sigma=0.0)
    assert hard.shape == (len(Q_PERCENT), 20, 30)
    for i, q in enumerate(Q_PERCENT):
        revealed = hard[i] == 1
        assert revealed.sum() == math.ceil(q / 100 * cmap.size)
        assert cmap[revealed].min() > cmap[~revealed].max()  # exactly the top of the map
        if i:
            assert np.all(hard[i] >= hard[i - 1])  # each step reveals more
    soft = reveal_masks(cmap)  # smoothed map, blurred mask: revealed pixels stay fully visible, edges in (0, 1)
    assert np.all((soft >= 0) & (soft <= 1)) and (soft == 1).sum(axis=(1, 2)).tolist() == [
        math.ceil(q / 100 * cmap.size) for q in Q_PERCENT]


def test_reveal_frames_blend_to_grey_and_resize_the_map():
    image = np.full((8, 8, 3), 200, np.uint8)
    cmap = np.zeros((4, 4))
    cmap[0, 0] = 1.0
    frames = reveal_frames(image, cmap, map_sigma=0.0, mask_sigma=0.0)
    assert len(frames) == len(Q_PERCENT) and frames[0].shape == (8, 8, 3)
    assert frames[0][0, 0].tolist() == [200, 200, 200] and frames[0][7, 7].tolist() == [128, 128, 128]


def test_page_is_self_contained(tmp_path):
    clusters, data = write_stores(tmp_path, n_items=3)
    out = tmp_path / "page.html"
    assert write_labelling_page(clusters, data, out, items=2) == 2 * 3 * 3  # items x layers x kept clusters
    text = out.read_text()
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", text)  # no network resource
    assert text.count("data:image/png;base64,") == 2 * 3 * 3 * len(Q_PERCENT)


def test_page_game_in_chromium_saves_an_ingestible_label_file(tmp_path, browser):
    clusters, data = write_stores(tmp_path, n_items=2)
    out = tmp_path / "page.html"
    write_labelling_page(clusters, data, out, items=1)
    page = browser.new_page(accept_downloads=True)
    errors: list[str] = []
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    page.on("pageerror", lambda err: errors.append(str(err)))
    page.goto(out.resolve().as_uri())
    first = page.locator("#frame").get_attribute("src")
    page.click("#more")
    page.click("#more")
    assert page.locator("#frame").get_attribute("src") != first
    assert "8% revealed" in page.text_content("#info")
    page.select_option("#guess", label=CLASSES[0])
    page.fill("#traits", "round outline, red blob")
    page.click("#submit")  # round 1: a correct guess at step 2 with two characteristics
    assert page.text_content("#status") == "Right! 2 answers so far."
    page.fill("#traits", "sharp corner")
    page.click("#resign")  # round 2: resigned at step 0, counted as the last step
    assert page.text_content("#status") == f"Resigned: it was a {CLASSES[0]}. 3 answers so far."
    page.select_option("#guess", label=CLASSES[2])
    page.click("#submit")  # round 3: a wrong guess without characteristics
    with page.expect_download() as info:
        page.click("#save")
    saved = tmp_path / "saved.json"
    info.value.save_as(saved)
    page.close()
    assert errors == []

    labels = read_label_file(saved)
    assert (labels.dataset, labels.model, labels.classes) == ("toy", "net", CLASSES)
    assert labels.store_sha256 == open_store(clusters).attrs["content_sha256"]
    rows = [(a["guess_id"], a["percentile"], a["guessed_label_id"], a["layer"], a["cluster"], a["characteristic"])
            for a in labels.answers]
    assert rows == [(0, 2, 0, "block1", 0, "round outline"), (0, 2, 0, "block1", 0, "red blob"),
                    (1, RESIGN_STEP, None, "block1", 1, "sharp corner"), (2, 0, 2, "block1", 2, "")]
    table, skipped = ingest([labels], {("toy", "net"): open_store(clusters)})
    assert table["text"].tolist() == ["round outline", "red blob", "sharp corner"]
    assert table["correct"].tolist() == [True, True, False] and skipped == {"empty": 1}
