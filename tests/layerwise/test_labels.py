"""Label files, game scores, Sentence-BERT label processing, merging and global explanations (INV, Bianchi 2024)."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from salbench.layerwise.explain import (global_explanations, merge_clusters, merge_groups, merged_map, merged_scores,
                                        run_labels)
from salbench.layerwise.labels import (LabelFileError, cluster_embeddings, game_scores, ingest, lemma_forms,
                                       load_sentence_model, read_label_file, representative, sentence_embedder,
                                       strip_class_name, synonym_table)
from salbench.store import open_store

from .label_fixtures import answer, label_doc, write_labels, write_stores


@pytest.fixture(scope="module")
def embed():
    """all-MiniLM-L6-v2, loaded once for the module (offline)."""
    return sentence_embedder(load_sentence_model())


def _synonyms(table: pd.DataFrame) -> dict[str, str]:
    return dict(zip(table["text"], table["synonym"]))


def test_synonym_labels_merge_unrelated_do_not(embed):
    texts = ["circle", "round", "circular shape", "sharp corner", "pointed corner", "blue background"]
    syn = _synonyms(synonym_table(texts * 2 + ["circle"], embed))
    assert syn["circle"] == syn["round"] == syn["circular shape"]
    assert syn["sharp corner"] == syn["pointed corner"]
    assert len({syn["circle"], syn["sharp corner"], syn["blue background"]}) == 3
    assert syn["sharp corner"] == "corner" and syn["blue background"] in {"blue", "background"}


def test_lemmas_map_to_the_representative_most_label_clusters_have(embed):
    # "corners" and "corner" land in different label clusters whose representatives share the lemma
    table = synonym_table(["corners", "corners", "corner", "blue sky", "blue background", "red", "dark red"], embed)
    syn = _synonyms(table)
    assert syn["corner"] == syn["corners"] and syn["corner"] in {"corner", "corners"}
    assert syn["red"] != syn["corner"]


def test_lemma_forms_count_label_clusters_ties_go_to_the_first():
    # the authors count representatives (one per label cluster), not answers: "corner" is given by two clusters
    assert lemma_forms(["corners", "corner", "red", "corner"]) == {"corners": "corner", "corner": "corner",
                                                                   "red": "red"}
    assert lemma_forms(["corners", "corner"]) == {"corners": "corners", "corner": "corners"}  # tie: the first


def test_representative_weighs_each_label_by_its_answers():
    # "red" (3 answers) and "blue" (1 answer), orthogonal embeddings: red's summed similarity is 3, blue's 1
    # (counting each distinct label once ties them, and the tie would go to "blue")
    e = np.eye(2)
    assert representative(["red", "blue"], e, [3, 1], {"red": e[0], "blue": e[1]}) == "red"
    assert representative(["red", "blue"], e, [1, 3], {"red": e[0], "blue": e[1]}) == "blue"


def test_representative_skips_the_authors_extra_stop_words():
    e = np.eye(2)
    assert representative(["left wing"], e[:1], [1], {"left": e[0], "wing": e[1]}) == "wing"


def test_strip_class_name():
    assert strip_class_name("Big Circle outline.", "circle") == "big outline"
    assert strip_class_name("the circle's rim", "circle") == "the rim"
    assert strip_class_name("Big Circles outline.", "circle") == "big circles outline"  # the authors keep plurals
    assert strip_class_name("a chain saw blade", "chain_saw") == "a blade"
    assert strip_class_name("circle", "circle") == ""
    assert strip_class_name("encircled", "circle") == "encircled"


def test_game_score_hand_example():
    rows = [answer(characteristic="round", step=1, guess=0), answer(characteristic="round", step=3, guess=2),
            answer(characteristic="red", step=5, guess=None), answer(characteristic="red", step=2, guess=1)]
    frame = pd.DataFrame(rows).rename(columns={"label": "target", "characteristic": "synonym"})
    frame["dataset"], frame["model"] = "toy", "net"
    frame["correct"] = frame["guessed_label_id"] == frame["target"]
    scores = game_scores(frame).set_index("synonym")
    assert scores.loc["round", "freq"] == 2 and scores.loc["round", "any_correct"]
    assert scores.loc["round", "score"] == pytest.approx(2 * (1 - 0.1 * 2))
    assert scores.loc["red", "score"] == pytest.approx(2 * (1 - 0.1 * 3.5) / 4)


def test_merging_hand_example():
    scores = {0: pd.Series({"round": 2.0, "red": 1.0}), 1: pd.Series({"corner": 1.5}),
              2: pd.Series({"round": 1.0, "edge": 1.0}), 3: pd.Series({"edge": 0.5, "red": 0.2}),
              4: pd.Series({"corner": 0.4, "red": 0.9})}
    assert merge_groups(scores) == [[0, 2, 3], [1], [4]]  # 2 ties round/edge: links 0 and 3 transitively
    weights = {0: 10.0, 1: 20.0, 2: 30.0, 3: 40.0, 4: 5.0}
    merged = merged_scores(scores, weights, [0, 2, 3])
    assert merged["round"] == pytest.approx((10 * 2.0 + 30 * 1.0) / 80)
    assert merged["edge"] == pytest.approx((30 * 1.0 + 40 * 0.5) / 80)
    assert merged["red"] == pytest.approx((10 * 1.0 + 40 * 0.2) / 80)
    maps = np.stack([np.full((2, 2), v) for v in (1.0, 0.0, 0.5)])
    np.testing.assert_allclose(merged_map(maps, [10, 30, 40]), np.full((2, 2), (10 + 0 + 20) / 80))


def test_merge_clusters_table():
    keys = {"dataset": "toy", "model": "net", "image": "eval-00000", "target": 0, "layer": "block1"}
    scores = pd.DataFrame([{**keys, "cluster": c, "synonym": s, "score": v}
                           for c, s, v in [(0, "round", 2.0), (1, "round", 1.0), (1, "edge", 0.5), (2, "edge", 1.0)]])
    weights = pd.DataFrame([{"dataset": "toy", "model": "net", "image": "eval-00000", "layer": "block1",
                             "cluster": c, "weight": w} for c, w in [(0, 30.0), (1, 10.0), (2, 20.0)]])
    merged = merge_clusters(scores, weights)
    first = merged[merged["clusters"] == "0+1"].set_index("synonym")
    assert first["weight"].iloc[0] == pytest.approx(40.0)
    assert first.loc["round", "score"] == pytest.approx((30 * 2 + 10 * 1) / 40) and first.loc["round", "rank"] == 1
    assert first.loc["edge", "score"] == pytest.approx(10 * 0.5 / 40)
    assert set(merged["clusters"]) == {"0+1", "2"}


def test_global_explanations_mean_and_slope():
    # cluster scores (unmerged), layers a, b, c. Class 0: "round" 1 at a, 1.5 and 2.5 at b (mean 2), none at c
    # (0) -> [1, 2, 0], slope -0.5; "edge" 4 and 2 at c on two clusters that have it (mean 3; the cluster at c
    # without it does not count) -> [0, 0, 3], slope 1.5. Class 1: "spiky" 1 at a only -> [1, 0, 0], slope -0.5
    rows = []
    for image, target, layer, cluster, synonym, score in [
            ("i0", 0, "a", 0, "round", 1.0), ("i0", 0, "b", 0, "round", 1.5), ("i1", 0, "b", 0, "round", 2.5),
            ("i0", 0, "c", 0, "edge", 4.0), ("i1", 0, "c", 1, "edge", 2.0), ("i1", 0, "c", 2, "spiky", 9.0),
            ("i2", 1, "a", 0, "spiky", 1.0)]:
        rows.append({"dataset": "toy", "model": "net", "image": image, "target": target, "layer": layer,
                     "cluster": cluster, "synonym": synonym, "score": score})
    per_layer, trends = global_explanations(pd.DataFrame(rows), {("toy", "net"): ["a", "b", "c"]})
    table = per_layer.set_index(["target", "layer", "synonym"])
    means, counts = table["score"], table["n_clusters"]
    assert means[(0, "b", "round")] == pytest.approx(2.0) and counts[(0, "b", "round")] == 2
    assert means[(0, "c", "edge")] == pytest.approx(3.0) and counts[(0, "c", "edge")] == 2
    assert means[(0, "c", "round")] == 0.0 and counts[(0, "c", "round")] == 0  # every layer, 0 where not given
    assert (1, "a", "round") not in means.index  # never given for class 1
    assert len(per_layer) == 3 * 3 + 1 * 3  # class 0: round, edge, spiky; class 1: spiky; three layers each
    slopes = trends.set_index(["target", "synonym"])["slope"]
    assert slopes[(0, "round")] == pytest.approx(-0.5) and slopes[(0, "edge")] == pytest.approx(1.5)
    assert slopes[(1, "spiky")] == pytest.approx(-0.5) and set(trends["n_layers"]) == {3}


@pytest.mark.parametrize("change, message", [
    (lambda d: d.update(format="other"), "format: expected 'salbench-labels'"),
    (lambda d: d["answers"][0].pop("layer"), r"answers\[0\].layer: missing"),
    (lambda d: d["answers"][1].update(percentile=6), r"answers\[1\].percentile: expected a reveal step 0..5"),
    (lambda d: d["answers"][0].update(cluster=True), r"answers\[0\].cluster: expected an integer, got true"),
    (lambda d: d["answers"][0].update(guessed_label_id=3), r"answers\[0\].guessed_label_id: expected a class index"),
    (lambda d: d["answers"][1].update(guessed_label_id=None), r"answers\[1\].percentile: a resigned round"),
    (lambda d: d.update(answers={}), "answers: expected a list"),
])
def test_label_file_errors_name_file_and_field(tmp_path, change, message):
    doc = label_doc([answer(), answer(step=2, guess_id=1)])
    change(doc)
    path = write_labels(tmp_path / "bad.json", doc)
    with pytest.raises(LabelFileError, match=message) as err:
        read_label_file(path)
    assert str(path) in str(err.value)


def test_label_file_not_json(tmp_path):
    path = tmp_path / "broken.json"
    path.write_text("{not json")
    with pytest.raises(LabelFileError, match="broken.json: not valid JSON"):
        read_label_file(path)


def test_ingest_skips_unknown_clusters_and_rejects_unknown_stores(tmp_path, caplog):
    clusters, _ = write_stores(tmp_path)
    store = open_store(clusters)
    rows = [answer(), answer(cluster=5), answer(layer="block9"), answer(image="eval-00099"),
            answer(label=1, guess=1), answer(characteristic="Circle's"), answer(step=5, guess=None),
            answer(characteristic="square with a hole", guess=1)]
    lf = read_label_file(write_labels(tmp_path / "l.json", label_doc(rows)))
    with caplog.at_level(logging.WARNING):
        table, skipped = ingest([lf], {("toy", "net"): store})
    # the guessed class's name is stripped (the authors process each guessed class's labels), not the true one's
    assert table["text"].tolist() == ["round", "with a hole"] and table["correct"].tolist() == [True, False]
    assert skipped == {"not_in_store": 3, "label_mismatch": 1, "empty": 1, "resigned": 1}
    assert "skipped 3 label(s)" in caplog.text
    with pytest.raises(LabelFileError, match="no cluster store for toy/net"):
        ingest([lf], {("toy", "other"): store})


def test_run_labels_end_to_end(tmp_path, embed):
    clusters, _ = write_stores(tmp_path)
    traits = {0: ["round", "circular shape", "round outline"], 1: ["sharp corner", "pointed corner", "corner"],
              2: ["blue background", "blue"]}
    rows, gid = [], 0
    for i, target in enumerate([0, 1, 2]):
        for layer in ["block1", "block3"]:
            for c, words in traits.items():
                for step, word in enumerate(words):  # the first guess of each cluster is wrong, the others right
                    guess = target if step else (target + 1) % 3
                    rows.append(answer(f"eval-{i:05d}", layer, c, word, step, guess, target, gid))
                    gid += 1
    path = write_labels(tmp_path / "labels.json", label_doc(rows))
    summary = run_labels([clusters], [path], tmp_path / "out", embed)
    assert summary["answers"] == len(rows) and summary["skipped"] == {}
    merged = pd.read_parquet(tmp_path / "out" / "merged.parquet")
    synonyms = pd.read_csv(tmp_path / "out" / "synonyms.csv")
    assert set(synonyms["guessed_label_id"]) == {0, 1, 2}  # one label analysis per guessed class
    syn = synonyms[synonyms["guessed_label_id"] == 0].set_index("text")["synonym"]
    assert syn["round"] == syn["circular shape"] != syn["sharp corner"]
    # the three clusters of each image and layer keep distinct best characteristics: nothing merges
    assert merged.groupby(["image", "layer"])["clusters"].nunique().eq(3).all()
    trends = pd.read_csv(tmp_path / "out" / "trends.csv")
    assert np.allclose(trends["slope"], 0.0)  # the same answers at block1 and block3, none at block2: flat
    assert json.loads((tmp_path / "out" / "summary.json").read_text())["sentence_model"].endswith("all-MiniLM-L6-v2")


@pytest.mark.parametrize("model, arch", [("cnn", "small_cnn"), ("resnet", "small_resnet")])
def test_shipped_demo_labels_are_valid(model, arch):
    from salbench.data.shapes import Shapes
    from salbench.models import build_model

    path = Path(__file__).resolve().parents[2] / "config" / "labels" / f"shapes_{model}.json"
    labels = read_label_file(path)
    assert (labels.dataset, labels.model, labels.classes) == ("shapes", model, list(Shapes.classes))
    layers = build_model(arch, len(Shapes.classes)).spec.layerwise
    assert {a["layer"] for a in labels.answers} == set(layers)  # every layer of the model's spec is labelled
    assert len({(a["image"], a["layer"], a["cluster"]) for a in labels.answers}) >= 40


def test_no_usable_labels_write_empty_tables(tmp_path):
    clusters, _ = write_stores(tmp_path)
    path = write_labels(tmp_path / "l.json", label_doc([answer(cluster=7), answer(characteristic="circle")]))
    summary = run_labels([clusters], [path], tmp_path / "out", embed=lambda texts: np.eye(len(texts)))
    assert summary["answers"] == 0 and summary["skipped"] == {"not_in_store": 1, "empty": 1}
    assert pd.read_parquet(tmp_path / "out" / "merged.parquet").empty
    assert pd.read_csv(tmp_path / "out" / "trends.csv").empty


def test_cli_reports_label_file_errors(tmp_path):
    from salbench.cli import main

    clusters, _ = write_stores(tmp_path)
    path = write_labels(tmp_path / "bad.json", label_doc([answer(step=9)]))
    with pytest.raises(SystemExit, match=r"bad.json: answers\[0\].percentile"):
        main(["labels", "--clusters", str(clusters), "--labels", str(path), "--out", str(tmp_path / "out")])


def test_label_clusters_are_chosen_by_the_euclidean_silhouette():
    # the authors score k with scikit-learn's default (Euclidean) silhouette on the embeddings
    from sklearn.cluster import AgglomerativeClustering
    from sklearn.metrics import silhouette_score

    rng = np.random.default_rng(3)
    for _ in range(20):
        points = rng.normal(size=(7, 3))
        points /= np.linalg.norm(points, axis=1, keepdims=True)
        fits = {k: AgglomerativeClustering(n_clusters=k, metric="cosine", linkage="complete").fit_predict(points)
                for k in range(2, 7)}
        euclid = max(fits, key=lambda k: (silhouette_score(points, fits[k]), -k))
        cosine = max(fits, key=lambda k: (silhouette_score(points, fits[k], metric="cosine"), -k))
        if euclid != cosine:
            break
    assert euclid != cosine, "no example where the two silhouettes choose differently"
    assert len(np.unique(cluster_embeddings(points))) == euclid
