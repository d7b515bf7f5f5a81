"""The implementation-agreement section: a library variant of the synthetic study's Grad-CAM against ours, on the
page in two tables that fit it, and its own GPU rule."""

from __future__ import annotations

from salbench.report.sections import get_section
from salbench.store import open_store, write_store

from ..conftest import section_inputs
from .section_helpers import render, run


def test_a_rescaled_variant_is_put_down_to_normalisation(tmp_path, study):
    inputs = section_inputs(study.kwargs)
    base = next(p for p in inputs["maps"] if p.name == "gradcam.zarr" and p.parent.name == "cnn_a")
    ds = open_store(base)
    variant = ds.copy()
    variant["saliency"] = ds["saliency"] * 2.5  # a rescaled copy: the measured cause is normalisation
    variant.attrs.update(method="gradcam@pytorch_grad_cam", method_name="gradcam@pytorch_grad_cam")
    inputs["maps"] = [*inputs["maps"], write_store(variant, tmp_path / "variant.zarr")]
    config = study.kwargs["config"]
    folder, context = run("implementation_agreement", tmp_path, config, inputs)
    (pair,) = context["pairs"]
    assert (pair["base"], pair["variant"], pair["cause"]) == ("gradcam", "gradcam@pytorch_grad_cam", "normalisation")
    assert pair["rerun_cause"] == ""  # no checkpoint given: nothing re-run
    assert (folder / context["csv"]).is_file() and "steps" in context["tables"]
    assert [p["variant"] for p in context["by_method"]["gradcam"]["pairs"]] == ["gradcam@pytorch_grad_cam"]
    html = render("implementation_agreement", context, config)
    assert "<td>normalisation</td>" in html and 'href="methods/gradcam.html"' in html
    assert '<span class="method">gradcam@pytorch_grad_cam</span>' in html  # not a configured method: no page
    assert html.count('<div class="scroll">') >= 2  # every table scrolls inside the page


def test_no_variant_and_no_second_protocol_is_an_empty_section(tmp_path, study):
    _, context = run("implementation_agreement", tmp_path, study.kwargs["config"], {})
    assert context["empty"].startswith("No library variants")


def test_the_section_runs_models_so_its_rule_gets_the_gpu():
    section = get_section("implementation_agreement")
    assert section.gpu and "variant_models" in section.inputs
