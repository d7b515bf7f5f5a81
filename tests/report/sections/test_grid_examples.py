"""The grid examples section: one figure per (data set, model) of the synthetic study's grid maps, the reason
where none were built, and each method's figures."""

from __future__ import annotations

from ..conftest import section_inputs
from ..synthetic import MODELS, NO_GRIDS
from .section_helpers import method_page, render, run


def test_section_draws_a_figure_per_pair_and_says_why_one_has_no_grids(tmp_path, study):
    config = study.kwargs["config"]
    inputs = {"grid_maps": section_inputs(study.kwargs)["grid_maps"]}
    folder, context = run("grid_examples", tmp_path, config, inputs)
    assert [(f["dataset"], f["model"]) for f in context["figures"]] == [("shapes", m) for m in MODELS]
    for f in context["figures"]:
        assert (folder / f["png"]).is_file() and (folder / f["svg"]).is_file()
    assert [f["dataset"] for f in context["by_method"]["gradcam"]["figures"]] == ["shapes"]  # cnn_b drew none
    html = render("grid_examples", context, config)
    page = method_page({"grid_examples": folder}, config, "gradcam", tmp_path / "report")
    assert 'src="../figures/grid_examples/grid_examples_shapes_cnn_a.png"' in page
    assert 'src="figures/grid_examples/grid_examples_shapes_cnn_a.png"' in html
    assert 'href="figures/grid_examples/grid_examples_shapes_cnn_b.svg"' in html
    assert "first 2 of 2 2x2 grids; 3 method(s)" in html and f"no grids: {NO_GRIDS}" in html


def test_no_grid_jobs_is_an_empty_section(tmp_path, study):
    _, context = run("grid_examples", tmp_path, study.kwargs["config"], {"grid_maps": []})
    assert context["empty"].startswith("Not run")
