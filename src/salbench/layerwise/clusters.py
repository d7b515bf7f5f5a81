"""Cluster maps of one layer (Bianchi et al., IJCAI 2024, arXiv:2405.03301; the authors' "agglomerative_pruned").

Follows ``Antonio-Dee/interpretable-network-visualizations``, ``Code/Feature Map Analysis/main.ipynb`` (the
"Agglomerative Clustering with thresholding" cell, ``reshape_fmaps``, ``compute_cluster_mean``).

The kept feature maps of a layer, each min-max normalised and flattened, are reduced by PCA
(``min(50, #maps, #pixels)`` components) and t-SNE (2-D, scikit-learn defaults, seeded), then grouped by
Ward agglomerative clustering into k = 3..8 clusters, k chosen by silhouette. A cluster weighs the sum of its
channels' percent weights; clusters lighter than ``max(max W / 3, mean W / 2)`` are dropped. A cluster map is
the weight-averaged activation of its channels, upsampled to the input and min-max normalised.

Choices the paper does not face (it clusters 256-512 maps per layer) are documented where they are made:
t-SNE's perplexity below the number of maps, and fewer than four kept maps (the authors' code would fail on
both). Two details differ on purpose: the cluster-weight filter compares unrounded weights (theirs rounds W_C
to 3 decimals first), and a constant cluster map becomes zeros (theirs keeps its raw values).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..methods.postprocess import upsample
from ..stats import min_max

#: the paper's settings (recorded in the store's attrs)
PCA_MAX_COMPONENTS = 50
TSNE_PERPLEXITY = 30.0  # scikit-learn's default
K_MIN, K_MAX = 3, 8
SILHOUETTE_TOLERANCE = 0.9
SILHOUETTE_RULE = (
    "k = 3..8 in order, best_score = -inf, best_silhouette = -1; accept k when its silhouette s > best_score and "
    "s > 0.9 * best_silhouette, then best_score = s and best_silhouette = max(best_silhouette, s) (the authors' "
    "agglomerative_pruned loop): the first k of highest silhouette, where a negative best must be beaten by 10 % "
    "of its magnitude"
)


def tsne_perplexity(n_maps: int) -> float:
    """scikit-learn's default perplexity 30, lowered to ``(n - 1) / 3`` below 91 maps (continuous at 91).

    t-SNE needs a perplexity below the number of points (the paper's layers have 256-512 maps; ours 16-128,
    fewer after pruning). A perplexity near ``n - 1`` makes every neighbour distribution almost uniform and
    erases the groups: on three groups of noisy blob maps, perplexity ``min(30, n - 1)`` recovered them with
    adjusted Rand index 0.0-0.4 for 6-24 maps, ``min(30, (n - 1) / 3)`` with 1.0 for 6-90 maps.
    """
    return min(TSNE_PERPLEXITY, max(1.0, (n_maps - 1) / 3))


def embed(maps: np.ndarray, seed: int) -> np.ndarray:
    """``[n, 2]`` t-SNE embedding of ``n`` flattened, min-max normalised maps ``[n, P]`` after PCA."""
    from sklearn.decomposition import PCA
    from sklearn.manifold import TSNE

    n, pixels = maps.shape
    reduced = PCA(n_components=min(PCA_MAX_COMPONENTS, n, pixels), random_state=seed).fit_transform(maps)
    tsne = TSNE(n_components=2, perplexity=tsne_perplexity(n), random_state=seed)
    return tsne.fit_transform(reduced.astype(np.float64))


def select_k(silhouettes: dict[int, float], tolerance: float = SILHOUETTE_TOLERANCE) -> int | None:
    """The k the authors' rule accepts last, scanning ``silhouettes`` in increasing k (:data:`SILHOUETTE_RULE`).

    None when no k is accepted (every silhouette at most ``-tolerance``).
    """
    best_score, best_silhouette, chosen = -np.inf, -1.0, None
    for k in sorted(silhouettes):
        score = silhouettes[k]
        if score > best_score and score > tolerance * best_silhouette:
            best_score, best_silhouette, chosen = score, max(best_silhouette, score), k
    return chosen


def choose_clusters(points: np.ndarray, k_min: int = K_MIN, k_max: int = K_MAX,
                    tolerance: float = SILHOUETTE_TOLERANCE) -> tuple[np.ndarray, int, float]:
    """Ward labels ``[n]`` of ``points [n, d]``, the chosen k and its silhouette (rule: :func:`select_k`).

    k runs over ``k_min..min(k_max, n - 1)`` (silhouette needs k < n); with fewer than ``k_min + 1`` points no
    k can be scored and every point is its own cluster (silhouette NaN). If no k is accepted, ``k_min`` is taken.
    """
    from sklearn.cluster import AgglomerativeClustering
    from sklearn.metrics import silhouette_score

    n = len(points)
    if n < k_min + 1:
        return np.arange(n), n, float("nan")
    labels, silhouettes = {}, {}
    for k in range(k_min, min(k_max, n - 1) + 1):
        labels[k] = AgglomerativeClustering(n_clusters=k, linkage="ward").fit_predict(points)
        silhouettes[k] = float(silhouette_score(points, labels[k]))
    k = select_k(silhouettes, tolerance)
    k = k_min if k is None else k
    return labels[k], k, silhouettes[k]


@dataclass(frozen=True)
class LayerClusters:
    """The kept clusters of one (item, layer), heaviest first."""

    maps: np.ndarray  #: ``[C, H, W]`` float32 in [0, 1]
    weights: np.ndarray  #: ``[C]`` percent of the layer's total weight
    sizes: np.ndarray  #: ``[C]`` channels per cluster
    members: list[np.ndarray]  #: channel indices (into the layer) per cluster
    n_kept_channels: int
    k_chosen: int  #: clusters before the weight filter (0 without kept channels)
    silhouette: float  #: silhouette of the chosen k (NaN when none was scored)


def filter_clusters(weights: np.ndarray) -> np.ndarray:
    """Boolean mask of the clusters kept: ``W_C >= max(max W / 3, mean W / 2)``."""
    threshold = max(weights.max() / 3, weights.mean() / 2)
    return weights >= threshold


def cluster_map(activations: np.ndarray, weights: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """``sum_k w~_k A_k / sum_k w~_k`` of ``[m, h, w]`` activations, bilinearly upsampled to ``size``, min-max
    normalised to [0, 1] (a constant map has no spatial content and becomes all zeros)."""
    mean = np.tensordot(weights, activations, axes=1) / weights.sum()
    up = upsample(torch.from_numpy(np.ascontiguousarray(mean, dtype=np.float32))[None], size, "bilinear")[0].numpy()
    return min_max(up, axis=None).astype(np.float32)


def cluster_layer(activations: np.ndarray, percent: np.ndarray, kept: np.ndarray, size: tuple[int, int],
                  seed: int) -> LayerClusters:
    """Cluster maps of one layer from its activations ``[K, h, w]``, percent weights ``[K]`` and kept mask ``[K]``."""
    index = np.flatnonzero(kept)
    if len(index) == 0:
        empty = np.zeros((0, *size), np.float32)
        return LayerClusters(empty, np.zeros(0), np.zeros(0, np.int64), [], 0, 0, float("nan"))
    kept_maps = activations[index].astype(np.float64)
    flat = min_max(kept_maps.reshape(len(index), -1), axis=1, constant="keep")  # as the authors' code
    points = embed(flat, seed) if len(index) > K_MIN else flat
    labels, k, silhouette = choose_clusters(points)
    members = [index[labels == c] for c in range(k)]
    weights = np.array([percent[m].sum() for m in members])
    order = [c for c in np.argsort(-weights, kind="stable") if filter_clusters(weights)[c]]
    maps = np.stack([cluster_map(activations[members[c]], percent[members[c]], size) for c in order])
    return LayerClusters(maps, weights[order], np.array([len(members[c]) for c in order]),
                         [members[c] for c in order], len(index), k, silhouette)
