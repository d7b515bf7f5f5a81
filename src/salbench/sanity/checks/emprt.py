"""eMPRT, the efficient model parameter randomisation test (Hedström et al., xAI 2024): does randomising the
model raise the complexity of its explanations?

MPRT's similarity measures are biased (by noise, preprocessing and layer order); eMPRT compares two model
states only, the trained model and the fully randomised one, by the *histogram entropy* of their maps: a
faithful method gives a structured, low-entropy map of the trained model and a noise-like one of the random
model. Per item the score is ``(H(e_rand) - H(e)) / H(e)``, i.e. ``H(e_rand) / H(e) - 1`` (Quantus'
``EfficientMPRT``; ``/work/shared/references/newer-checks.md`` §1), with ``H`` the entropy (natural log) of the
map's values counted in :data:`N_BINS` equal-width bins over the map's own min..max (``numpy.histogram``).
Both maps come from the randomisation cascade the family already computes (its original and last stage), so
the check costs no explanation pass of its own.

Protocol differences from ``quantus.EfficientMPRT`` (defaults ``layer_order="bottom_up"``, ``seed=42``):

- the fully randomised model is the last stage of the first configured order's cascading cascade (both orders
  end in the same model): each layer is re-initialised by its own ``reset_parameters()`` drawn from its own
  seed (:func:`~salbench.sanity.randomisation.layer_seed`), where Quantus re-seeds ``seed + 1`` before every
  layer, so equal-shaped layers get identical weights there; ``sanity.batchnorm: keep`` leaves batch-norm
  layers trained (Quantus resets every module that has ``reset_parameters``). With Quantus' seeding the end
  model, and the scores, are the same (the parity test);
- a constant original map has zero entropy: its score is NaN (Quantus divides by zero), left out of the
  verdict's mean and counted by the verdict's ``n_items``; a constant randomised map has zero entropy and
  scores -1, as in Quantus;
- a fixed 100 bins (Quantus' default; its bin-count rules read the number of a map's axes as its sample size);
- the maps are the method's own (no Quantus ``abs``/``normalise``, its defaults too; normalising would not
  change a histogram over the map's own range); no extra scores (output entropies, per-layer curves).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from .base import Check, register_check
from .randomisation import CAPABILITY

if TYPE_CHECKING:
    from ..run import CheckJob

NAME = "emprt"
#: equal-width histogram bins of the entropy (Quantus' and the paper's default)
N_BINS = 100
HEDSTROM = ("Hedström, Weber, Lapuschkin & Höhne. A Fresh Look at Sanity Checks for Saliency Maps. xAI 2024, "
            "CCIS 2153, pp. 403-420. arXiv:2405.02383")


def histogram_entropy(maps: np.ndarray, n_bins: int = N_BINS) -> np.ndarray:
    """Per map of ``[N, ...]``, the entropy (nats) of its values in ``n_bins`` equal-width bins over its own
    min..max: ``numpy.histogram`` then ``scipy.stats.entropy`` of the counts, as Quantus' ``discrete_entropy``
    (a constant map falls in one bin: entropy 0)."""
    import scipy.stats

    maps = np.asarray(maps)
    counts = np.stack([np.histogram(values, bins=n_bins)[0] for values in maps.reshape(len(maps), -1)])
    return scipy.stats.entropy(counts, axis=1)


def complexity_rise(original: np.ndarray, randomised: np.ndarray, n_bins: int = N_BINS
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per item: the entropies ``H(e)`` and ``H(e_rand)`` of the original and randomised maps ``[N, ...]``, and
    eMPRT's relative rise ``(H(e_rand) - H(e)) / H(e)`` (NaN where the original map is constant)."""
    before, after = histogram_entropy(original, n_bins), histogram_entropy(randomised, n_bins)
    safe = np.where(before > 0, before, 1.0)
    return before, after, np.where(before > 0, (after - before) / safe, np.nan)


def compute(job: "CheckJob") -> list[pd.DataFrame]:
    """eMPRT per item from the original and the last stage of the first order's cascading cascade, with both
    entropies (at the stage each belongs to)."""
    names, maps = job.cascade("cascading", job.settings.orders[0])
    before, after, rise = complexity_rise(maps[0].numpy(), maps[-1].numpy())
    last = len(names) - 1
    return [job.rows(NAME, "entropy_original", before, names[0], 0),
            job.rows(NAME, "entropy_randomised", after, names[last], last),
            job.rows(NAME, NAME, rise, names[last], last)]


register_check(Check(
    sensitivity="model",
    name=NAME, compute=compute, statistic=NAME, passes_when="above", threshold=0.0, controls=("sobel",),
    requires=(CAPABILITY,),
    description="the maps' histogram entropy rises when the model is fully randomised (eMPRT, Hedström et al. "
                "2024)",
    citation=HEDSTROM,
    rule="relative rise in the map's histogram entropy (100 bins) from the trained to the fully randomised model, "
         "H(e_rand) / H(e) - 1; above 0: randomisation made the map more complex"))
