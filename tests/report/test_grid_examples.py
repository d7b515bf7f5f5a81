"""The report's grid localisation examples: method choice, cell outlines, the figure and its section."""

from __future__ import annotations

import re

import numpy as np
import pytest
from salbench.grid import cell_index
from salbench.report.grid_examples import MethodMaps, cell_box, choose_methods, pair_figures, read_stores, shown_grids
from salbench.store import write_store

from .synthetic import CLASSES, MODELS, NO_GRIDS, grid_map_stores


def _maps(method: str, registered: str) -> MethodMaps:
    return MethodMaps(method, registered, np.zeros((1, 4, 2, 2), np.float32), np.zeros((1, 4)), False)


def test_all_methods_up_to_eight_else_the_preferred_then_ours_before_library_variants():
    order = ["gradient", "gradcam", "gradcam@captum", "ig", "lrp", "rise", "occlusion", "sobel", "coda", "random"]
    registered = {"coda": "coda_contributions", "ig": "integrated_gradients", "gradcam@captum": "gradcam@captum"}
    methods = [_maps(m, registered.get(m, m)) for m in reversed(order)]
    assert [m.method for m in choose_methods(methods[:8], order)] == [m for m in order if m in
                                                                       {x.method for x in methods[:8]}]
    chosen = [m.method for m in choose_methods(methods, order)]
    # 10 methods: coda, gradcam, gradient always; then the report's order, the captum variant dropped first
    assert chosen == ["gradient", "gradcam", "ig", "lrp", "rise", "occlusion", "sobel", "coda"]
    assert [m.method for m in choose_methods(methods, order, limit=3)] == ["gradient", "gradcam", "coda"]


def test_shown_grids_fit_sixteen_panels_a_row():
    assert [shown_grids(5, 2), shown_grids(2, 2), shown_grids(5, 3), shown_grids(0, 2), shown_grids(9, 4)] == [
        4, 2, 1, 0, 1]


@pytest.mark.parametrize(("height", "width", "n"), [(64, 64, 2), (10, 7, 3), (33, 50, 4)])
def test_cell_outline_covers_exactly_the_pixels_the_score_assigns_to_the_cell(height, width, n):
    cells = cell_index(height, width, n).reshape(height, width).numpy()
    yy, xx = np.mgrid[:height, :width]
    for k in range(n * n):
        x, y, w, h = cell_box(k, n, height, width)
        inside = (xx > x) & (xx < x + w) & (yy > y) & (yy < y + h)  # pixel centres inside the rectangle
        np.testing.assert_array_equal(inside, cells == k)


def test_figure_shows_each_cells_class_and_score_and_says_why_without_grids(tmp_path):
    stores = grid_map_stores(tmp_path / "grid", _data_store(tmp_path))
    examples = read_stores(stores)
    assert sorted(examples) == [("shapes", m) for m in MODELS]
    a = examples[("shapes", "cnn_a")]
    assert a.grids == [0, 1] and a.n == 2 and a.labels[0] == [CLASSES[t] for t in (0, 1, 2, 0)]
    scores = {m.method: m.scores for m in a.methods}
    np.testing.assert_allclose(scores["gradcam"], 1.0)
    np.testing.assert_allclose(scores["random"], 0.25)
    assert {m.method: m.signed for m in a.methods} == {"gradcam": False, "random": False, "gradient": True}

    figures = {(f["dataset"], f["model"]): f for f in
               pair_figures(stores, ["gradient", "gradcam", "random"], {"random"}, tmp_path / "report")}
    for model in MODELS:
        png, svg = figures[("shapes", model)]["png"], figures[("shapes", model)]["svg"]
        assert (tmp_path / "report" / png).stat().st_size > 1000 and (tmp_path / "report" / svg).is_file()
    svg = (tmp_path / "report" / figures[("shapes", "cnn_a")]["svg"]).read_text()
    titles = re.findall(r"<text[^>]*>([^<]*)</text>", svg)  # svg.fonttype none: texts stay text
    # rows = methods in the report's order, columns = the cells of grid 0 then grid 1; titles = the cells' scores
    shown = [t for t in titles if re.fullmatch(r"\d\.\d\d", t)]
    assert shown == [f"{scores[m][g, k]:.2f}" for m in ("gradient", "gradcam", "random") for g in (0, 1)
                     for k in range(4)]
    assert shown[8:16] == ["1.00"] * 8 and shown[16:] == ["0.25"] * 8
    assert "grid 1, cell 3" in svg and "gradient" in svg
    empty = (tmp_path / "report" / figures[("shapes", "cnn_b")]["svg"]).read_text()
    assert "no grids were built" in empty and "needs 4 classes" in empty
    assert figures[("shapes", "cnn_a")]["note"] == "first 2 of 2 2x2 grids; 3 method(s)"
    assert figures[("shapes", "cnn_b")]["note"] == f"no grids: {NO_GRIDS}" and figures[("shapes", "cnn_b")]["methods"] == []


def test_stores_of_one_pair_from_other_grids_are_refused(tmp_path):
    stores = grid_map_stores(tmp_path / "grid", _data_store(tmp_path))
    from salbench.store import open_store

    other = open_store(stores[0])
    other.attrs["grid_store_sha256"] = "another grid store"
    write_store(other, tmp_path / "other.zarr")
    with pytest.raises(ValueError, match="scored on other grids"):
        read_stores([stores[0], tmp_path / "other.zarr"])


def _data_store(tmp_path):
    from .synthetic import _data

    return write_store(_data(np.random.default_rng(0)), tmp_path / "data.zarr")
