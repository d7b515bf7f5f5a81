"""The galleries section: each method's best and worst items on the gallery metric, one figure per method family
and (data set, model), and each method's items."""

from __future__ import annotations

import pandas as pd

from ..conftest import REGISTERED_METRICS, section_inputs
from ..synthetic import MODELS
from .section_helpers import method_page, render, run


def test_section_picks_best_and_worst_items_and_draws_a_figure_per_family(tmp_path, study):
    config = {**study.kwargs["config"], "metrics": REGISTERED_METRICS}  # registered metrics: the section reads their info
    inputs = section_inputs(study.kwargs)
    folder, context = run("galleries", tmp_path, config,
                          {"scores": inputs["scores"], "maps": inputs["maps"], "data": inputs["data"]})
    assert context["metric"] == "pointing_game"  # the first localisation metric
    assert [(p["dataset"], p["model"]) for p in context["pairs"]] == [("shapes", m) for m in MODELS]
    assert [f["family"] for f in context["pairs"][0]["figures"]] == ["gradients", "CAM", "controls"]
    assert all((folder / f["png"]).is_file() for p in context["pairs"] for f in p["figures"])
    table = pd.read_csv(folder / context["csv"])
    mine = table[(table["model"] == "cnn_a") & (table["method"] == "gradient")]
    best, worst = mine[mine["side"] == "best"], mine[mine["side"] == "worst"]
    assert len(best) == len(worst) == 3 and best["value"].min() >= worst["value"].max()
    assert len(context["by_method"]["gradient"]["items"]) == 6 * len(MODELS)
    html = render("galleries", context, config)
    page = method_page({"galleries": folder}, config, "gradcam", tmp_path / "report")
    assert 'src="../figures/galleries/gallery_shapes_cnn_a_CAM.png"' in page
    assert "<code>pointing_game</code>" in html and 'src="figures/galleries/gallery_shapes_cnn_b_CAM.png"' in html


def test_scores_without_maps_give_an_empty_section(tmp_path, study):
    config = {**study.kwargs["config"], "metrics": REGISTERED_METRICS}
    scores = section_inputs(study.kwargs)["scores"]
    _, context = run("galleries", tmp_path, config, {"scores": scores, "maps": [], "data": []})
    assert context["empty"] == "No method has maps and scores on pointing_game to pick its best and worst items by."
