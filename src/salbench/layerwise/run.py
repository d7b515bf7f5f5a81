"""The layer-wise cluster-map job: INV (Bianchi et al., IJCAI 2024) for the first eval items of a data store.

One forward/backward pass per batch of items records every explained layer's activations and target-logit
gradients; the clustering then runs per (item, layer) on the CPU (numpy, scikit-learn). The store
``clusters.zarr`` has dims ``item, layer, cluster, y, x`` with ``cluster`` = 0..7 (at most k = 8 clusters),
the kept clusters heaviest first, NaN (``cluster_size`` 0) where a cluster does not exist; the ``layer``
coordinates ``fmap_height``, ``fmap_width`` give each layer's feature-map size. Reference code:
``Antonio-Dee/interpretable-network-visualizations``, ``Code/Feature Map Analysis/main.ipynb`` (see
:mod:`.weights` and :mod:`.clusters`).
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
import xarray as xr

from ..provenance import file_sha256, provenance
from ..store import first_items, object_strings, write_store
from .clusters import (
    K_MAX,
    K_MIN,
    PCA_MAX_COMPONENTS,
    SILHOUETTE_RULE,
    SILHOUETTE_TOLERANCE,
    TSNE_PERPLEXITY,
    cluster_layer,
)
from .weights import PRUNE_RULE, guided_channel_weights, kept_channels, layer_activations_and_grads, percent_weights

log = logging.getLogger("salbench")

METHOD = "inv_cluster_maps"
CITATION = (
    "Bianchi, De Santis, Tocchetti & Brambilla. Interpretable Network Visualizations: A Human-in-the-Loop "
    "Approach for Post-hoc Explainability of CNN-based Image Classification. IJCAI 2024, pp. 3715-3723. "
    "arXiv:2405.03301"
)
PARAMS = {
    "logits": "target logit, no softmax",
    "channel_weight": "w_k = mean_ij 1[A>0] 1[dy/dA>0] dy/dA; w~_k = 100 w_k / sum w (percent)",
    "prune_rule": PRUNE_RULE,
    "map_normalisation": "min-max per kept map, flattened",
    "pca_components": f"min({PCA_MAX_COMPONENTS}, #maps, #pixels)",
    "tsne": "scikit-learn defaults, 2-D, random_state = seed",
    "tsne_perplexity": f"min({TSNE_PERPLEXITY:g}, max(1, (#maps - 1) / 3))",
    "clustering": "AgglomerativeClustering(linkage='ward') on the t-SNE points",
    "k_range": [K_MIN, K_MAX],
    "silhouette_tolerance": SILHOUETTE_TOLERANCE,
    "few_maps": f"fewer than {K_MIN + 1} kept maps: each map its own cluster (no k can be scored)",
    "cluster_filter": "keep W_C >= max(max W / 3, mean W / 2)",
    "cluster_map": "sum w~_k A_k / sum w~_k, bilinear upsampling to the input, min-max to [0, 1]",
}


def compute_clusters(model: torch.nn.Module, images: torch.Tensor, targets: torch.Tensor, layers: Sequence[str],
                     seed: int, batch_size: int, device: str | torch.device = "cpu") -> dict[str, np.ndarray]:
    """Cluster-map arrays for ``images [N,C,H,W]`` (uint8 or floats in [0, 1]) and ``targets [N]``.

    Returns ``cluster_map [N,L,8,H,W]``, ``cluster_weight [N,L,8]``, ``cluster_size [N,L,8]``,
    ``n_kept_channels``, ``k_chosen``, ``silhouette`` ``[N,L]``, ``predicted [N]`` and each layer's feature-map
    size ``fmap_height``, ``fmap_width`` ``[L]`` (the labelling page tiles the cluster maps at that size).
    """
    n, (height, width), n_layers = len(images), tuple(images.shape[-2:]), len(layers)
    out = {
        "cluster_map": np.full((n, n_layers, K_MAX, height, width), np.nan, np.float32),
        "cluster_weight": np.full((n, n_layers, K_MAX), np.nan, np.float32),
        "cluster_size": np.zeros((n, n_layers, K_MAX), np.int16),
        "n_kept_channels": np.zeros((n, n_layers), np.int16),
        "k_chosen": np.zeros((n, n_layers), np.int16),
        "silhouette": np.full((n, n_layers), np.nan, np.float32),
        "predicted": np.zeros(n, np.int64),
        "fmap_height": np.zeros(n_layers, np.int64),
        "fmap_width": np.zeros(n_layers, np.int64),
    }
    for start in range(0, n, batch_size):
        x = images[start : start + batch_size].to(device)
        x = x.float().div_(255) if x.dtype == torch.uint8 else x.float()
        target = targets[start : start + batch_size].to(device)
        acts, grads, logits = layer_activations_and_grads(model, layers, x, target)
        out["predicted"][start : start + len(x)] = logits.argmax(dim=1).cpu().numpy()
        for j, (a, g) in enumerate(zip(acts, grads)):
            out["fmap_height"][j], out["fmap_width"][j] = a.shape[-2:]
            percent = percent_weights(guided_channel_weights(a, g).double())
            kept = kept_channels(percent)
            a, percent, kept = a.cpu().double().numpy(), percent.cpu().numpy(), kept.cpu().numpy()
            for b in range(len(x)):
                result = cluster_layer(a[b], percent[b], kept[b], (height, width), seed)
                i, c = start + b, len(result.weights)
                out["cluster_map"][i, j, :c] = result.maps
                out["cluster_weight"][i, j, :c] = result.weights
                out["cluster_size"][i, j, :c] = result.sizes
                out["n_kept_channels"][i, j] = result.n_kept_channels
                out["k_chosen"][i, j] = result.k_chosen
                out["silhouette"][i, j] = result.silhouette
    return out


def layerwise_clusters(dataset: str, model_name: str, data_path: Path, checkpoint: Path, seed: int, device: str,
                       out: Path, items: int = 16, batch_size: int = 16, threads: int = 1,
                       layers: Sequence[str] | None = None) -> xr.Dataset:
    """Cluster maps of the model spec's layer-wise layers for the first ``items`` items; write ``clusters.zarr``."""
    from threadpoolctl import threadpool_limits

    # absolute import: device choice and seeding do not shape these numbers (PCA and t-SNE get the seed), and
    from salbench.runtime import resolve_device, seed_everything  # absolute, in a function: the hash follows it

    from ..models import load_checkpoint

    start = time.perf_counter()
    device = resolve_device(device)
    seed_everything(seed)
    data = first_items(data_path, items)
    model = load_checkpoint(checkpoint, device)
    layers = list(layers or model.spec.layerwise)
    if not layers:
        raise ValueError(f"model {model_name!r} (arch {model.spec.arch!r}) names no layer-wise layers in its spec")
    n = min(items, data.sizes["item"])
    images = torch.from_numpy(data["image"].values[:n])
    targets = torch.from_numpy(data["target"].values[:n])
    compute_start = time.perf_counter()
    with threadpool_limits(limits=max(1, threads)):
        arrays = compute_clusters(model, images, targets, layers, seed, batch_size, device)
    compute_s = time.perf_counter() - compute_start
    item_dims, layer_dims = ("item", "layer", "cluster"), ("item", "layer")
    ds = xr.Dataset(
        {
            "cluster_map": ((*item_dims, "y", "x"), arrays["cluster_map"]),
            "cluster_weight": (item_dims, arrays["cluster_weight"]),
            "cluster_size": (item_dims, arrays["cluster_size"]),
            "n_kept_channels": (layer_dims, arrays["n_kept_channels"]),
            "k_chosen": (layer_dims, arrays["k_chosen"]),
            "silhouette": (layer_dims, arrays["silhouette"]),
        },
        coords={
            "item": object_strings(data["item"].values[:n]),
            "target": ("item", data["target"].values[:n].astype(np.int64)),
            "predicted": ("item", arrays["predicted"]),
            "layer": object_strings(layers),
            "fmap_height": ("layer", arrays["fmap_height"]),
            "fmap_width": ("layer", arrays["fmap_width"]),
            "cluster": np.arange(K_MAX, dtype=np.int64),
        },
        attrs={
            "dataset": dataset, "model": model_name, "method": METHOD, "citation": CITATION, "seed": seed,
            "params": PARAMS, "silhouette": SILHOUETTE_RULE, "layers": layers, "n_items": n,
            "checkpoint_sha256": file_sha256(checkpoint), "data_manifest_sha256": data.attrs["manifest_sha256"],
            "data_store_sha256": data.attrs["content_sha256"], "device": device, "compute_s": compute_s,
            "seconds_per_item": compute_s / max(n, 1), "runtime_s": time.perf_counter() - start,
            "provenance": provenance(device),
        },
    )
    write_store(ds, out)
    log.info("layer-wise clusters of %s on %s: %d items x %d layers in %.1f s", model_name, dataset, n, len(layers),
             compute_s)
    return ds
