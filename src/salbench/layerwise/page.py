"""The labelling page: one self-contained HTML file playing the authors' "Deep Reveal" game offline.

Bianchi et al., IJCAI 2024 (arXiv:2405.03301). The reveal follows ``Antonio-Dee/interpretable-network-
visualizations``, ``Code/Human Knowledge Collection/heatmap_utils.py`` (``computeMaskedImage``) with the heatmap
the game was given by ``Code/Feature Map Analysis/main.ipynb`` (``computeOverlay``: the min-max normalised cluster
map resized back to the layer's feature-map size). For each (image, layer, cluster), step i of the game:

1. the cluster map, resized (scikit-image, anti-aliased) to the layer's ``h x w`` feature-map grid, is tiled back
   to the image by nearest-neighbour repetition (upscale factor ``f = int(H / h)``);
2. the pixels at or above the map's ``100 - Q_PERCENT[i]`` percentile are revealed (ties all revealed);
3. the 0/1 mask is Gaussian-blurred (scikit-image, ``truncate=1.5``) with sigma 3, 6, 12, 16, 24 px for
   ``f`` = 2, 4, 8, 16, 32 (3 otherwise), and the frame is ``image * mask`` on a black background, truncated
   to uint8.

At any step the player guesses the class, writes free-text characteristics, or resigns (counted as the last
step). "Save answers" downloads the answers as a label file (:mod:`salbench.layerwise.labels` reads it). Frames
are computed here and embedded as PNG data URIs; the page needs no server and no network.
"""

from __future__ import annotations

import base64
import html
import io
import json
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr
from PIL import Image

from ..store import first_items, open_store
from .labels import FORMAT, Q_PERCENT, RESIGN_STEP, VERSION
from .explain import store_key

#: the authors' mask blur (px) by upscale factor image side / feature-map side (``computeBlur``); 3 otherwise
BLUR_SIGMA: dict[int, float] = {2: 3.0, 4: 6.0, 8: 12.0, 16: 16.0, 32: 24.0}
DEFAULT_BLUR_SIGMA = 3.0
#: the authors' Gaussian truncation (in sigmas) of the mask blur
BLUR_TRUNCATE = 1.5


def blur_sigma(image_side: int, fmap_side: int) -> float:
    """The mask's blur sigma in pixels for an image side over a feature-map side (:data:`BLUR_SIGMA`)."""
    return BLUR_SIGMA.get(image_side // fmap_side, DEFAULT_BLUR_SIGMA)


def tiled_heatmap(cluster_map: np.ndarray, fmap_shape: tuple[int, int], image_shape: tuple[int, int]) -> np.ndarray:
    """The map the game thresholds: ``cluster_map`` resized to ``fmap_shape``, repeated up to ``image_shape``.

    Nearest-neighbour repetition is the authors' tiling when the image side is a multiple of the feature-map
    side (their code needs that); otherwise each image pixel takes the feature-map cell it falls in.
    """
    from skimage.transform import resize

    small = resize(np.nan_to_num(np.asarray(cluster_map, float)), fmap_shape)
    rows = np.arange(image_shape[0]) * fmap_shape[0] // image_shape[0]
    cols = np.arange(image_shape[1]) * fmap_shape[1] // image_shape[1]
    return small[np.ix_(rows, cols)]


def reveal_masks(cluster_map: np.ndarray, fmap_shape: tuple[int, int], image_shape: tuple[int, int],
                 q_percent: tuple[float, ...] = Q_PERCENT) -> np.ndarray:
    """Soft reveal masks ``[steps, H, W]`` in [0, 1] of one cluster map, by the authors' rule (module doc)."""
    from skimage.filters import gaussian

    heatmap = tiled_heatmap(cluster_map, fmap_shape, image_shape)
    sigma = blur_sigma(image_shape[0], fmap_shape[0])
    masks = np.zeros((len(q_percent), *image_shape))
    for i, q in enumerate(q_percent):
        hard = (heatmap >= np.percentile(heatmap, 100 - q)).astype(float)
        masks[i] = gaussian(hard, sigma=sigma, truncate=BLUR_TRUNCATE)
    return masks


def reveal_frames(image: np.ndarray, cluster_map: np.ndarray, fmap_shape: tuple[int, int]) -> list[np.ndarray]:
    """uint8 frames ``[y, x, 3]`` of ``image`` (HWC) times :func:`reveal_masks`, on black, truncated as theirs."""
    masks = reveal_masks(cluster_map, fmap_shape, image.shape[:2])[..., None]
    return [(image * m).astype(np.uint8) for m in masks]


def png_uri(image: np.ndarray) -> str:
    """A PNG data URI of a uint8 image."""
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG", optimize=True)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def feature_map_shapes(clusters: xr.Dataset) -> dict[str, tuple[int, int]]:
    """Each layer's feature-map ``(h, w)`` from the cluster store's ``fmap_height``/``fmap_width`` coordinates."""
    if "fmap_height" not in clusters.coords or "fmap_width" not in clusters.coords:
        raise ValueError("the cluster store has no fmap_height/fmap_width coordinates (written by `salbench "
                         "layerwise` since the reveal follows the authors' feature-map tiling): rerun that job")
    return {str(layer): (int(h), int(w)) for layer, h, w in
            zip(clusters["layer"].values, clusters["fmap_height"].values, clusters["fmap_width"].values)}


def page_data(clusters: xr.Dataset, data: xr.Dataset, items: int, dataset: str, model: str) -> dict[str, Any]:
    """What the page embeds: the label file's header and one round per kept cluster of the first ``items`` items."""
    images = {str(i): data["image"].sel(item=i).values.transpose(1, 2, 0) for i in data["item"].values}
    fmap_shapes = feature_map_shapes(clusters)
    rounds = []
    for item in map(str, clusters["item"].values[:items]):
        if item not in images:
            raise KeyError(f"item {item!r} of the cluster store is not in the data store")
        target = int(clusters["target"].sel(item=item))
        for layer in map(str, clusters["layer"].values):
            weights = clusters["cluster_weight"].sel(item=item, layer=layer).values
            fmap_shape = fmap_shapes[layer]
            for c in np.flatnonzero(~np.isnan(weights)):
                cmap = clusters["cluster_map"].sel(item=item, layer=layer).values[c]
                frames = reveal_frames(images[item], cmap, fmap_shape)
                rounds.append({"image": item, "label": target, "layer": layer, "cluster": int(c),
                               "weight": round(float(weights[c]), 2), "frames": [png_uri(f) for f in frames]})
    return {"format": FORMAT, "version": VERSION, "dataset": dataset, "model": model,
            "store_sha256": clusters.attrs.get("content_sha256"), "classes": [str(c) for c in data.attrs["classes"]],
            "q_percent": list(Q_PERCENT), "resign_step": RESIGN_STEP, "rounds": rounds}


_STYLE = """
body{font-family:sans-serif;max-width:40em;margin:1em auto;color:#222}
#frame{width:320px;height:320px;border:1px solid #888;display:block;margin:.5em 0}
textarea{width:100%;height:4em} button{margin:.2em} #status{color:#555}
"""

_SCRIPT = """
const D = JSON.parse(document.getElementById('data').textContent);
const $ = id => document.getElementById(id);
const answers = [];
let round = 0, step = 0, guessId = 0;
for (const [i, name] of D.classes.entries()) $('guess').add(new Option(name, i));

function show() {
  const done = round >= D.rounds.length;
  for (const id of ['more', 'submit', 'resign']) $(id).disabled = done;
  if (done) { $('info').textContent = 'All rounds played: save your answers.'; return; }
  const r = D.rounds[round];
  $('frame').src = r.frames[step];
  $('info').textContent = `Round ${round + 1} of ${D.rounds.length}: layer ${r.layer}, cluster ${r.cluster}` +
    ` (w = ${r.weight}%), ${D.q_percent[step]}% revealed`;
  $('more').disabled = step >= D.q_percent.length - 1;
}

function record(guess) {
  const r = D.rounds[round];
  const traits = $('traits').value.split(/[,;\\n]/).map(s => s.trim()).filter(s => s);
  for (const characteristic of (traits.length ? traits : [''])) {
    answers.push({characteristic, guess_id: guessId, percentile: guess === null ? D.resign_step : step,
                  guessed_label_id: guess, layer: r.layer, cluster: r.cluster, image: r.image, label: r.label});
  }
  const answer = `it was a ${D.classes[r.label]}.`;
  const verdict = guess === r.label ? 'Right!' : `${guess === null ? 'Resigned' : 'Wrong'}: ${answer}`;
  $('status').textContent = `${verdict} ${answers.length} answers so far.`;
  guessId += 1; round += 1; step = 0;
  $('traits').value = ''; $('guess').value = '';
  show();
}

$('more').onclick = () => { step += 1; show(); };
$('submit').onclick = () => { if ($('guess').value !== '') record(Number($('guess').value)); };
$('resign').onclick = () => record(null);
$('save').onclick = () => {
  const {format, version, dataset, model, store_sha256, classes} = D;
  const text = JSON.stringify({format, version, dataset, model, store_sha256, classes, answers}, null, 1);
  const a = document.createElement('a');
  a.href = URL.createObjectURL(new Blob([text], {type: 'application/json'}));
  a.download = `labels_${dataset}_${model}.json`;
  document.body.append(a); a.click(); a.remove();
};
show();
"""


def render_page(data: dict[str, Any]) -> str:
    """The page's HTML for :func:`page_data`'s dictionary."""
    title = f"Label cluster maps: {data['dataset']} / {data['model']}"
    payload = json.dumps(data).replace("</", "<\\/")
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title><style>{_STYLE}</style></head>
<body>
<h1>{html.escape(title)}</h1>
<p>Each round shows an image revealed through what one group of the network's feature maps responds to.
Reveal more until you can tell the class, then pick it and describe what the revealed part shows
(several characteristics separated by commas, e.g. "round outline, red"), or resign.
Save your answers as a file when you are done and add it to the study's <code>layerwise.labels</code>.</p>
<p id="info"></p>
<img id="frame" alt="cluster map reveal">
<button id="more">Reveal more</button>
<p><label>Class <select id="guess"><option value="">(choose)</option></select></label></p>
<p><label>Characteristics<br><textarea id="traits"></textarea></label></p>
<button id="submit">Submit guess</button> <button id="resign">Resign</button>
<p id="status"></p>
<button id="save">Save answers</button>
<script type="application/json" id="data">{payload}</script>
<script>{_SCRIPT}</script>
</body></html>
"""


def write_labelling_page(clusters_path: Path, data_path: Path, out: Path, items: int = 4) -> int:
    """``salbench labelling-page``: write the page for the first ``items`` items; returns the number of rounds."""
    clusters = open_store(clusters_path)
    data = first_items(data_path, clusters.sizes["item"])  # the clusters are of the data set's first items
    dataset, model = store_key(clusters_path, clusters)
    page = page_data(clusters, data, items, dataset, model)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(render_page(page))
    return len(page["rounds"])
