"""The example maps section: one readable figure per method family and (data set, model), never more than
MAX_METHODS maps a row; families from the method catalog."""

from __future__ import annotations

from PIL import Image

from salbench.config import load_catalog
from salbench.report.section_inputs import families_of, method_family
from salbench.report.sections.example_maps import MAX_METHODS, parts

from ..conftest import section_inputs
from ..synthetic import MODELS
from .section_helpers import method_page, render, run


def test_large_families_split_into_balanced_parts():
    assert [len(p) for p in parts([f"m{k}" for k in range(14)])] == [5, 5, 4]
    assert parts(["a", "b"]) == [["a", "b"]] and [len(p) for p in parts(list("abcdefg"), 6)] == [4, 3]
    assert sum(parts([f"m{k}" for k in range(48)]), []) == [f"m{k}" for k in range(48)]


def test_families_come_from_the_catalog_modules_and_variants_join_their_base():
    catalog = load_catalog()
    assert method_family("gradcam", catalog) == method_family("gradcam@captum", catalog) == "CAM"
    assert method_family("integrated_gradients", catalog) == "gradients"
    assert method_family("lrp_epsilon@zennit", catalog) == "relevance propagation"
    assert method_family("a_plugin_method", catalog) == "other"
    config = {"methods": {"gc": {"method": "gradcam"}, "noise": {"method": "random"}, "grad": {"method": "gradient"}}}
    assert families_of(["gc", "grad", "noise"], config, catalog) == [
        ("gradients", ["grad"]), ("CAM", ["gc"]), ("controls", ["noise"])]


def test_section_draws_one_figure_per_family_and_pair(tmp_path, study):
    config = study.kwargs["config"]
    inputs = section_inputs(study.kwargs)
    maps = [p for p in inputs["maps"] if p.parent.name == MODELS[0]]  # one model: three figures are enough
    folder, context = run("example_maps", tmp_path, config, {"maps": maps, "data": inputs["data"]})
    assert [(p["dataset"], p["model"]) for p in context["pairs"]] == [("shapes", MODELS[0])]
    figures = context["pairs"][0]["figures"]
    assert [(f["family"], f["methods"]) for f in figures] == [
        ("gradients", ["gradient"]), ("CAM", ["gradcam"]), ("controls", ["edges", "random"])]
    with Image.open(folder / figures[2]["png"]) as image:  # 4 items x (input + 2 maps) at a readable size
        assert image.height > 4 * 100 and image.width > 3 * 100
    assert all(len(f["methods"]) <= MAX_METHODS for p in context["pairs"] for f in p["figures"])
    assert [(f["model"], f["family"]) for f in context["by_method"]["gradcam"]["figures"]] == [(MODELS[0], "CAM")]
    html = render("example_maps", context, config)
    page = method_page({"example_maps": folder}, config, "gradcam", tmp_path / "report")
    assert 'src="../figures/example_maps/examples_shapes_cnn_a_CAM.png"' in page
    assert 'src="figures/example_maps/examples_shapes_cnn_a_controls.png"' in html
    assert '<a class="method" href="methods/edges.html">edges</a><span class="tag">control</span>' in html


def test_no_maps_is_an_empty_section(tmp_path, study):
    _, context = run("example_maps", tmp_path, study.kwargs["config"], {"maps": [], "data": []})
    assert "No saliency maps" in context["empty"]
