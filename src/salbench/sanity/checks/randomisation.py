"""The model-parameter randomisation family: one cascade per (mode, order), three verdicts read from it.

Adebayo et al. (NeurIPS 2018) re-initialise a trained model from the logits down (*top-down*), cumulatively
(*cascading*) or one layer at a time (*independent*), and compare each stage's map with the original. Binder
et al. (CVPR 2023) show that top-down randomisation tends to keep the scale of forward activations, so maps
can change little even though the model is destroyed; Hedström et al. (xAI 2024) recommend randomising
*bottom-up*, from the input layer, which this family also runs (``sanity.orders``; in forward order). Every
stage's map is computed once per job and shared by every verdict and similarity measure of the family.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import pandas as pd

from .base import MEASURE, Check, register_check

if TYPE_CHECKING:
    from ..run import CheckJob

#: randomisation modes: cumulative from the first randomised layer on, or one layer at a time
MODES: tuple[str, ...] = ("cascading", "independent")
#: layer orders of a cascade: from the logits down (Adebayo et al.) or from the input up (forward order)
ORDERS: tuple[str, ...] = ("top_down", "bottom_up")
#: the model spec capability every check of the family needs (re-initialising layers)
CAPABILITY = "parameter_randomisation"

ADEBAYO = ("Adebayo, Gilmer, Muelly, Goodfellow, Hardt & Kim. Sanity Checks for Saliency Maps. NeurIPS 2018. "
           "arXiv:1810.03292")
BINDER = ("Binder, Weber, Lapuschkin, Montavon, Müller & Samek. Shortcomings of Top-Down Randomization-Based "
          "Sanity Checks for Evaluations of Deep Neural Network Explanations. CVPR 2023. arXiv:2211.12486")

FULL = "model_sensitivity"


def cascade_rows(mode: str, order: str = ORDERS[0]) -> str:
    """The sanity table's ``check`` value of the cascade of ``mode`` and ``order`` (independent: one for all orders)."""
    if mode == "independent":
        return f"{FULL}_independent"
    return FULL if order == ORDERS[0] else f"{FULL}_{order}"


def cascade_orders(modes: tuple[str, ...] | list[str], orders: tuple[str, ...] | list[str]) -> list[tuple[str, str]]:
    """``(mode, order)`` of every cascade a job runs: each order for cascading, independent once (its stages
    are the same in any order: each re-initialises one layer of the original model)."""
    return [(mode, order) for mode in modes for order in (orders if mode == "cascading" else orders[:1])]


def fraction_stage(last: int, fraction: float) -> int:
    """The stage read part-way along a cascade of ``last`` randomised stages: ``ceil(fraction * last)``."""
    return math.ceil(fraction * last)


def cascades(job: "CheckJob") -> list[pd.DataFrame]:
    """Per-stage similarity of each cascade's maps to the original maps, every measure, every item."""
    from ..randomisation import stage_similarities

    frames = []
    for mode, order in cascade_orders(job.settings.modes, job.settings.orders):
        names, maps = job.cascade(mode, order)
        for statistic, values in stage_similarities(maps, job.similarity).items():
            rows = cascade_rows(mode, order)
            frames += [job.rows(rows, statistic, values[k], name, k) for k, name in enumerate(names)]
    return frames


FAMILY = dict(compute=cascades, statistic=MEASURE, passes_when="below", threshold=0.5, controls=("sobel",),
              requires=(CAPABILITY,))

register_check(Check(
    sensitivity="model",
    name=FULL,
    description="maps change when the model's weights are randomised top-down, cascading (Adebayo et al. 2018)",
    citation=ADEBAYO, rule="similarity of the fully randomised (last cascading stage) map to the original",
    stage="last", **FAMILY))
register_check(Check(
    sensitivity="model",
    name="top_layer_sensitivity",
    description="maps already change when only the top layers are randomised (guided backprop does not, Adebayo "
                "et al. 2018)",
    citation=ADEBAYO, rule="similarity of the map after randomising the top part of the cascade (from the logits "
                           "down, ``top_fraction`` of its stages) to the original", rows=FULL, stage="fraction",
    **FAMILY))
register_check(Check(
    sensitivity="model",
    name="bottom_layer_sensitivity",
    description="maps already change when only the bottom layers are randomised, from the input up in forward "
                "order (Binder et al. 2023: top-down randomisation keeps activation scales)",
    citation=BINDER, rule="similarity of the map after randomising the bottom part of the bottom-up cascade "
                          "(``top_fraction`` of its stages, from the input) to the original",
    rows=cascade_rows("cascading", "bottom_up"), stage="fraction", **FAMILY))
