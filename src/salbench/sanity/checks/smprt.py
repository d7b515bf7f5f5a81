"""sMPRT, the smooth model parameter randomisation test (Hedström et al., xAI 2024): MPRT on denoised maps.

Noisy maps (gradient shattering) look dissimilar even when nothing changed, which biases MPRT towards noisy
methods. sMPRT averages every map over ``sanity.smprt_samples`` noisy copies of the input (noise level
``sanity.smprt_noise`` of each item's value range, the last copy clean; :mod:`salbench.sanity.smoothing`)
before comparing the original model's smoothed map with each cascade stage's, by the configured similarity
measures (``newer-checks.md`` §2). The verdict reads the last stage (the fully randomised model), Quantus'
``return_last_correlation``; lower is better. With one sample it is MPRT's cascade exactly.

Protocol differences from ``quantus.SmoothMPRT`` (defaults ``nr_samples=50``, ``noise_magnitude=0.1``,
``layer_order="bottom_up"``, Spearman of ``|ASME(map)|``):

- the cascade is the first configured order's cascading cascade, in the model spec's blocks (``sanity.
  granularity``) and forward order for ``bottom_up`` (Quantus: every module with ``reset_parameters`` in
  registration order), each layer drawn from its own seed (Quantus: ``seed + 1`` before every layer); with
  Quantus' layers and seeding the stages, and the scores, are the same (the parity test);
- the noise is seeded, counter-based and the same copies for every stage (Quantus draws fresh, unseeded
  ``np.random`` noise for the original and for each layer);
- the maps are the method's own, smoothed (Quantus ignores ``explain_func`` and smooths ``quantus.explain``
  maps); the comparison is the sanity section's measures, e.g. ``spearman_abs`` (``|map|`` clipped at its
  99th percentile; Quantus: ``|map|`` after a batch-wide ASME normalisation);
- the original's smoothed map is compared, not an unsmoothed ``a_batch`` (what MetaQuantus passes).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pandas as pd

from .base import MEASURE, Check, register_check
from .emprt import HEDSTROM
from .randomisation import CAPABILITY

if TYPE_CHECKING:
    from ..run import CheckJob

NAME = "smprt"


def compute(job: "CheckJob") -> list[pd.DataFrame]:
    """Per stage and measure, the similarity of each stage's smoothed map to the original's smoothed map."""
    from ..randomisation import stage_similarities

    names, maps = job.smoothed_cascade(job.settings.orders[0])
    return [job.rows(NAME, statistic, values[k], name, k)
            for statistic, values in stage_similarities(maps, job.similarity).items()
            for k, name in enumerate(names)]


register_check(Check(
    sensitivity="model",
    name=NAME, compute=compute, statistic=MEASURE, passes_when="below", threshold=0.5, stage="last",
    controls=("sobel",), requires=(CAPABILITY,),
    description="maps averaged over noisy inputs change when the model's weights are randomised (sMPRT, "
                "Hedström et al. 2024)",
    citation=HEDSTROM,
    rule="similarity of the fully randomised model's smoothed map (mean over noisy inputs, the last clean) to the "
         "original model's smoothed map"))
