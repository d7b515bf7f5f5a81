"""The human-in-the-loop rules through the real Snakefile: cluster maps, labelling page, label processing."""

from __future__ import annotations

import json

import pytest
import yaml

from salbench.layerwise.labels import FORMAT, VERSION
from salbench.models import build_model
from workflow.workflow_runs import TINY, snakemake

CLASSES = ["circle", "square", "triangle", "cross", "ring", "star"]


@pytest.mark.slow
@pytest.mark.workflow
def test_labelling_rules_run_on_the_tiny_study(tmp_path):
    config = yaml.safe_load(TINY.read_text())
    config["datasets"].pop("shapes_pair")
    layers = list(build_model("small_cnn", len(CLASSES)).spec.layerwise)
    # the heaviest cluster (0) of every layer always exists; cluster 7 of the last layer rarely does
    answers = [{"characteristic": trait, "guess_id": j, "percentile": 1 + j % 3, "guessed_label_id": 0,
                "layer": layer, "cluster": 0, "image": "eval-00000", "label": None}
               for j, layer in enumerate(layers) for trait in ("round outline", "whole object")]
    labels = tmp_path / "labels.json"
    config["layerwise"] = {"models": ["cnn"], "items": 2, "page_items": 1, "labels": [str(labels)]}
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    # the true label comes from the data store: prepare it first
    prepared = snakemake(tmp_path, tmp_path / "config.yaml", "results/shapes/data.zarr")
    assert prepared.returncode == 0, prepared.stderr[-3000:]
    from salbench.store import open_store

    target = int(open_store(tmp_path / "results/shapes/data.zarr")["target"].values[0])
    labels.write_text(json.dumps({"format": FORMAT, "version": VERSION, "dataset": "shapes", "model": "cnn",
                                  "store_sha256": None, "classes": CLASSES,
                                  "answers": [{**a, "label": target} for a in answers]}))
    result = snakemake(tmp_path, tmp_path / "config.yaml", "results/shapes/cnn/layerwise/labelling.html",
                       "results/tables/tiny/layerwise")
    assert result.returncode == 0, result.stderr[-3000:]
    page = (tmp_path / "results/shapes/cnn/layerwise/labelling.html").read_text()
    assert "Save answers" in page and page.count("data:image/png;base64,") % 6 == 0
    summary = json.loads((tmp_path / "results/tables/tiny/layerwise/summary.json").read_text())
    assert summary["answers"] == len(answers) and summary["merged_groups"] == len(layers)
