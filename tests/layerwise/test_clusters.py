"""Clustering of feature maps into cluster maps (INV, Bianchi et al. 2024): groups recovered, weights, filter."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from sklearn.metrics import adjusted_rand_score

from salbench.layerwise.clusters import (
    K_MAX,
    SILHOUETTE_TOLERANCE,
    choose_clusters,
    cluster_layer,
    cluster_map,
    filter_clusters,
    select_k,
    tsne_perplexity,
)
from salbench.stats import min_max


def grouped_maps(sizes, size=12, noise=0.15, seed=0):
    """Feature maps ``[K, size, size]`` in groups: each a noisy, randomly scaled copy of its group's Gaussian blob."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    centres = [(3, 3), (8, 8), (3, 9), (9, 2)]
    maps, truth = [], []
    for group, count in enumerate(sizes):
        cy, cx = centres[group]
        blob = np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * 1.5**2))
        for _ in range(count):
            maps.append(np.maximum(blob * rng.uniform(0.5, 2) + noise * rng.standard_normal(blob.shape), 0))
            truth.append(group)
    order = rng.permutation(len(maps))  # groups interleaved across channel indices
    return np.array(maps)[order], np.array(truth)[order]


@pytest.mark.parametrize(("sizes", "seed"), [((8, 8, 8), 0), ((8, 8, 8), 1), ((5, 7, 10, 12), 0), ((3, 3, 3), 2)])
def test_clustering_recovers_known_groups_of_feature_maps(sizes, seed):
    maps, truth = grouped_maps(sizes, seed=seed)
    k = len(maps)
    percent = np.full(k, 100 / k)  # equal weights: every cluster passes the weight filter
    result = cluster_layer(maps, percent, np.ones(k, bool), (24, 24), seed=seed)
    labels = np.empty(k, int)
    for cluster, members in enumerate(result.members):
        labels[members] = cluster
    assert result.k_chosen == len(sizes) and result.n_kept_channels == k
    assert adjusted_rand_score(truth, labels) == 1.0
    assert sorted(result.sizes.tolist()) == sorted(sizes) and result.sizes.sum() == k
    np.testing.assert_allclose(result.weights, result.sizes * 100 / k)
    assert result.maps.shape == (len(sizes), 24, 24) and result.maps.min() == 0 and result.maps.max() == 1


def test_only_kept_channels_are_clustered_and_clusters_come_heaviest_first():
    maps, truth = grouped_maps((6, 6, 6), seed=3)
    percent = np.where(truth == 0, 8.0, np.where(truth == 1, 6.0, 2.5)) / 1.0
    percent = 100 * percent / percent.sum()
    kept = np.ones(len(maps), bool)
    kept[np.flatnonzero(truth == 2)[:2]] = False  # two maps of the light group pruned
    result = cluster_layer(maps, percent, kept, (12, 12), seed=0)
    assert result.n_kept_channels == 16 and result.k_chosen == 3
    assert all(kept[m].all() for m in result.members)
    # W = (48.5, 36.4, 10.1) %: threshold max(48.5 / 3, 31.7 / 2) = 16.2 drops the light group
    assert [set(truth[m]) for m in result.members] == [{0}, {1}]
    assert np.all(np.diff(result.weights) < 0)
    np.testing.assert_allclose(result.weights, [percent[truth == 0].sum(), percent[truth == 1].sum()])


def test_select_k_follows_the_authors_rule():
    assert select_k({3: 0.5, 4: 0.6, 5: 0.6, 6: 0.55}) == 4  # first k of highest silhouette
    assert select_k({3: 0.4, 4: 0.39, 5: 0.41}) == 5
    # a negative best must be beaten by 10 % of its magnitude: -0.47 > -0.5 is not enough, -0.44 is
    assert select_k({3: -0.5, 4: -0.47, 5: -0.44}) == 5
    assert select_k({3: -0.5, 4: -0.47, 5: -0.46}) == 3
    # the starting bar is 0.9 * -1: nothing at or below -0.9 is accepted
    assert select_k({3: -0.95, 4: -0.92}) is None
    assert SILHOUETTE_TOLERANCE == 0.9


def test_few_maps_each_form_their_own_cluster_and_k_never_reaches_n():
    points = np.array([[0.0, 0.0], [1.0, 0.0], [5.0, 5.0]])
    labels, k, silhouette = choose_clusters(points)
    assert k == 3 and sorted(labels.tolist()) == [0, 1, 2] and np.isnan(silhouette)
    rng = np.random.default_rng(0)
    for n in (4, 5, 9, 30):
        _, k, silhouette = choose_clusters(rng.standard_normal((n, 2)))
        assert 3 <= k <= min(K_MAX, n - 1) and -1 <= silhouette <= 1
        assert tsne_perplexity(n) < n
    assert tsne_perplexity(91) == tsne_perplexity(500) == 30.0  # scikit-learn's default where there are enough maps


def test_no_kept_channel_gives_no_cluster():
    result = cluster_layer(np.ones((4, 3, 3)), np.zeros(4), np.zeros(4, bool), (6, 6), seed=0)
    assert result.maps.shape == (0, 6, 6) and result.k_chosen == 0 and result.n_kept_channels == 0


def test_cluster_filter_uses_the_larger_of_both_thresholds():
    # max / 3 = 13.3 > mean / 2 = 10: the 6 % and 4 % clusters go
    assert filter_clusters(np.array([40.0, 30, 20, 6, 4])).tolist() == [True, True, True, False, False]
    # mean / 2 = 12.125 > max / 3 = 10: the 12 % cluster goes although it is above max / 3
    assert filter_clusters(np.array([30.0, 28, 27, 12])).tolist() == [True, True, True, False]
    # a cluster exactly at the threshold stays (the authors drop W < threshold)
    assert filter_clusters(np.array([30.0, 10, 20])).tolist() == [True, True, True]


def test_cluster_map_is_the_weighted_mean_of_raw_activations_min_max_normalised():
    a1 = np.array([[0.0, 1], [2, 3]])
    a2 = np.array([[4.0, 0], [0, 0]])
    # (30 a1 + 10 a2) / 40 = [[1, 0.75], [1.5, 2.25]] -> min 0.75, range 1.5
    expected = np.array([[0.25 / 1.5, 0], [0.75 / 1.5, 1]])
    np.testing.assert_allclose(cluster_map(np.stack([a1, a2]), np.array([30.0, 10]), (2, 2)), expected, atol=1e-6)
    up = cluster_map(np.stack([a1, a2]), np.array([30.0, 10]), (8, 8))
    mean = torch.tensor([[1.0, 0.75], [1.5, 2.25]])[None, None]
    ref = F.interpolate(mean, size=(8, 8), mode="bilinear", align_corners=False)[0, 0].numpy()
    np.testing.assert_allclose(up, (ref - ref.min()) / (ref.max() - ref.min()), atol=1e-6)
    assert up.dtype == np.float32
    assert (cluster_map(np.ones((2, 3, 3)), np.array([1.0, 2]), (3, 3)) == 0).all()  # constant: no spatial content


def test_minmax_per_row_leaves_constant_rows_unchanged():
    rows = np.array([[1.0, 3, 2], [5, 5, 5]])
    np.testing.assert_allclose(min_max(rows, axis=1, constant="keep"), [[0, 1, 0.5], [5, 5, 5]])
