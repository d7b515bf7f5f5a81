"""The report's layer-wise figures and characteristics on synthetic stores and processed labels (the section
itself: tests/report/sections/test_layerwise.py)."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pandas as pd

from salbench.layerwise.explain import run_labels
from salbench.layerwise.labels import tokens
from salbench.report.layerwise import pair_parts

from .label_fixtures import answer, label_doc, write_labels, write_stores


def _bag_of_words(texts):
    """Unit-norm token-count vectors: an exact, model-free embedder (labels sharing words are close)."""
    vocab = sorted({t for text in texts for t in tokens(text)})
    out = np.zeros((len(texts), len(vocab)))
    for i, text in enumerate(texts):
        for t, n in Counter(tokens(text)).items():
            out[i, vocab.index(t)] = n
    return out / np.linalg.norm(out, axis=1, keepdims=True)


def test_section_draws_maps_and_trends(tmp_path):
    clusters, data = write_stores(tmp_path)
    rows = [answer("eval-00000", "block1", 0, "sharp edge", 1, 0),
            answer("eval-00000", "block1", 1, "sharp edges", 2, 0),  # same best characteristic: merges with 0
            answer("eval-00000", "block3", 0, "round hole", 3, 0),
            answer("eval-00000", "block3", 2, "whole object", 0, 0),
            answer("eval-00001", "block2", 0, "whole object", 4, None, label=1)]
    path = write_labels(tmp_path / "labels.json", label_doc([{**r, "percentile": 5} if r["guessed_label_id"] is None
                                                            else r for r in rows]))
    out = tmp_path / "labels"
    run_labels([clusters], [path], out, embed=_bag_of_words)
    (part,) = pair_parts([clusters], out, {"toy": data}, tmp_path / "report")
    images = [part["maps_png"], part["trends_png"]]
    assert images == ["figures/layerwise_maps_toy_net.png", "figures/layerwise_trends_toy_net.png"]
    assert all((tmp_path / "report" / name).stat().st_size > 0 for name in images)
    # per class, the characteristics by mean score over the three layers (0 where not given): "sharp" (the
    # representative of "sharp edge(s)") 0.9 and 0.8 at block1 -> [0.85, 0, 0]; "object" [0, 0, 1.0]; "hole"
    # [0, 0, 0.7]. The resigned answer (the only one for class 1, square) joins no class's labels
    (circle,) = part["top"]
    assert circle["class"] == "circle" and [(c["synonym"], round(c["score"], 2), round(c["slope"], 2))
                                            for c in circle["characteristics"]] == [
        ("object", 0.33, 0.5), ("sharp", 0.28, -0.43), ("hole", 0.23, 0.35)]
    assert "0+1" in set(pd.read_parquet(out / "merged.parquet")["clusters"])


def test_section_without_labels_or_stores(tmp_path):
    clusters, data = write_stores(tmp_path)
    (part,) = pair_parts([clusters], None, {"toy": data}, tmp_path / "report")
    assert (part["maps_png"], part["trends_png"], part["labelled"], part["top"]) == (
        "figures/layerwise_maps_toy_net.png", None, False, [])
    assert pair_parts([], None, {}, tmp_path / "report") == []
