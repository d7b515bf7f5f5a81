"""The labelling page: reveal masks, a self-contained file, and a game played in headless Chromium."""

from __future__ import annotations

import re

import numpy as np
import pytest
from scipy import ndimage

from salbench.layerwise.labels import Q_PERCENT, RESIGN_STEP, ingest, read_label_file
from salbench.layerwise.page import (blur_sigma, page_data, reveal_frames, reveal_masks, tiled_heatmap,
                                     write_labelling_page)
from salbench.store import open_store

from .label_fixtures import CLASSES, write_stores


@pytest.mark.parametrize("image_side, fmap_side, sigma", [
    (256, 128, 3.0), (256, 64, 6.0), (256, 32, 12.0), (256, 16, 16.0), (512, 16, 24.0),  # the authors' table
    (224, 56, 6.0), (224, 14, 16.0), (30, 10, 3.0), (64, 64, 3.0),  # factor 3 and 1: their default 3
])
def test_blur_sigma_by_upscale_factor(image_side, fmap_side, sigma):
    assert blur_sigma(image_side, fmap_side) == sigma


def test_reveal_masks_reveal_every_pixel_at_or_above_the_percentile():
    # a 10 x 10 map at feature-map resolution (no resize, no tiling): two pixels of 1 on a plateau of 0.
    # q = 2 %: the 98th percentile of 98 zeros and 2 ones is 0.02 (linear), so the two ones are revealed;
    # q = 4.5 %: the 95.5th percentile is 0, so the whole plateau is (ties are all revealed)
    cmap = np.zeros((10, 10))
    cmap[0, 0] = cmap[9, 9] = 1.0
    masks = reveal_masks(cmap, (10, 10), (10, 10))
    hard = np.zeros((10, 10))
    hard[0, 0] = hard[9, 9] = 1.0
    blurred = ndimage.gaussian_filter(hard, 3.0, mode="nearest", truncate=1.5)  # factor 1: sigma 3
    np.testing.assert_allclose(masks[0], blurred, atol=1e-12)
    np.testing.assert_allclose(masks[1:], 1.0, atol=1e-12)
    assert masks[0, 0, 0] < 1  # the blur dims revealed pixels too


def test_reveal_tiles_the_feature_map_grid_and_blurs_by_its_factor():
    # a 16 px map whose 4 x 4 blocks are constant: the 4 x 4 feature-map grid, upscale factor 4 -> sigma 6
    grid = np.arange(16, dtype=float).reshape(4, 4) / 15
    cmap = np.kron(grid, np.ones((4, 4)))
    tiled = tiled_heatmap(cmap, (4, 4), (16, 16))
    blocks = tiled.reshape(4, 4, 4, 4).transpose(0, 2, 1, 3).reshape(16, 16)
    assert np.all(blocks == blocks[:, :1])  # one value per feature-map cell
    assert np.array_equal(np.argsort(blocks[:, 0]), np.arange(16))  # in the grid's order
    masks = reveal_masks(cmap, (4, 4), (16, 16))
    hard = np.zeros((16, 16))
    hard[12:, 12:] = 1.0  # q = 2 %: the 98th percentile falls inside the top cell, which is revealed whole
    expected = ndimage.gaussian_filter(hard, 6.0, mode="nearest", truncate=1.5)
    np.testing.assert_allclose(masks[0], expected, atol=1e-12)


def test_reveal_frames_multiply_the_image_on_black():
    image = np.full((8, 8, 3), 200, np.uint8)
    cmap = np.zeros((8, 8))
    cmap[0, :2] = 1.0  # 2 of 64 pixels: the 98th percentile is 0.74, so q = 2 % reveals just these
    frames = reveal_frames(image, cmap, (8, 8))
    assert len(frames) == len(Q_PERCENT) and frames[0].shape == (8, 8, 3) and frames[0].dtype == np.uint8
    hard = np.zeros((8, 8))
    hard[0, :2] = 1.0
    mask = ndimage.gaussian_filter(hard, 3.0, mode="nearest", truncate=1.5)
    np.testing.assert_array_equal(frames[0][..., 0], np.floor(200 * mask).astype(np.uint8))
    assert frames[0][7, 7].tolist() == [0, 0, 0]  # black, not grey, where nothing is revealed


def test_page_needs_the_feature_map_sizes(tmp_path):
    clusters, data = write_stores(tmp_path, n_items=1)
    store = open_store(clusters).drop_vars(["fmap_height", "fmap_width"])
    with pytest.raises(ValueError, match="fmap_height/fmap_width"):
        page_data(store, open_store(data), 1, "toy", "net")


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
    assert table["text"].tolist() == ["round outline", "red blob"]  # resigned answers join no class's labels
    assert table["correct"].tolist() == [True, True] and skipped == {"resigned": 1, "empty": 1}
