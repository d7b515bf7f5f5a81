"""The fidelity section: docs/fidelity.md's table beside the methods the study ran, escaped, per method."""

from __future__ import annotations

from ..conftest import section_inputs
from .section_helpers import method_page, render, run


def test_section_shows_the_table_escaped_with_rows_of_methods_not_run_greyed(tmp_path, study):
    config = study.kwargs["config"]
    folder, context = run("fidelity", tmp_path, config, {"fidelity": section_inputs(study.kwargs)["fidelity"]})
    assert [r["ran"] for r in context["rows"]] == [True, False]  # gradcam ran, rap did not
    assert list(context["by_method"]) == ["gradcam"] and (folder / context["csv"]).is_file()
    html = render("fidelity", context, config)
    assert "<code>wjNam/Relative_Attributing_Propagation</code>" in html and "none | all" in html
    assert '<tr class="weak"><td><code>rap</code>' in html and "<tr><td><code>gradcam</code>" in html
    assert "a &lt;b&gt;test&lt;/b&gt;" in html and "<b>" not in html
    page = method_page({"fidelity": folder}, config, "gradcam", tmp_path / "report")
    assert "<td><code>jacobgil/pytorch-grad-cam</code>, <code>base_cam.py</code></td>" in page


def test_without_the_table_the_section_says_so(tmp_path, study):
    _, context = run("fidelity", tmp_path, study.kwargs["config"], {"fidelity": []})
    assert "No fidelity table" in context["empty"]
