"""The layer-wise section: cluster maps and, with people's labels, each class's characteristics across layers."""

from __future__ import annotations

from salbench.layerwise.explain import run_labels

from layerwise.label_fixtures import answer, label_doc, write_labels, write_stores
from layerwise.test_report_section import _bag_of_words
from .section_helpers import render, run

CONFIG = {"study": "t", "methods": {}}


def test_without_labels_the_maps_are_shown_unlabelled(tmp_path):
    clusters, data = write_stores(tmp_path)
    folder, context = run("layerwise", tmp_path, CONFIG, {"layerwise": [clusters], "data": [data]})
    (pair,) = context["pairs"]
    assert (pair["dataset"], pair["model"], pair["labelled"]) == ("toy", "net", False)
    assert (folder / pair["maps_png"]).is_file() and pair["trends_png"] is None
    html = render("layerwise", context, CONFIG)
    assert 'src="figures/layerwise/layerwise_maps_toy_net.png"' in html and "no labels yet" in html


def test_labels_give_each_class_its_characteristics(tmp_path):
    clusters, data = write_stores(tmp_path)
    rows = [answer("eval-00000", "block1", 0, "sharp edge", 1, 0), answer("eval-00000", "block3", 0, "round hole", 3, 0)]
    labels = tmp_path / "labels"
    run_labels([clusters], [write_labels(tmp_path / "labels.json", label_doc(rows))], labels, embed=_bag_of_words)
    folder, context = run("layerwise", tmp_path, CONFIG,
                          {"layerwise": [clusters], "layerwise_labels": [labels], "data": [data]})
    (pair,) = context["pairs"]
    assert pair["labelled"] and (folder / pair["trends_png"]).is_file()
    html = render("layerwise", context, CONFIG)
    assert "<td>circle</td><td>edge (0.30, slope -0.45), hole (0.23, slope +0.35)</td>" in html


def test_no_cluster_stores_is_an_empty_section(tmp_path):
    _, context = run("layerwise", tmp_path, CONFIG, {"layerwise": []})
    assert context["empty"].startswith("Not computed")
