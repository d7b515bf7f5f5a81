"""Random logit (Sixt et al. 2020, as in Quantus): the map for a random other class must differ from the target's."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pandas as pd

from .base import MEASURE, Check, register_check

if TYPE_CHECKING:
    from ..run import CheckJob

NAME = "random_logit"


def compute(job: "CheckJob") -> list[pd.DataFrame]:
    """Similarity of each item's map and the method's map for a random non-target class (one extra pass)."""
    from ..class_sensitivity import random_logit

    values = random_logit(job.method, job.model, job.images, job.targets, job.maps, job.num_classes,
                          job.similarity, job.settings.measure, job.seed, job.batch_size, job.device)
    return [job.rows(NAME, job.settings.measure, values)]


register_check(Check(
    sensitivity="label",
    name=NAME, compute=compute, statistic=MEASURE, passes_when="below", threshold=0.5, applies_to="two_object",
    description="the map for a random other class differs from the target's (Sixt et al. 2020; Quantus)",
    citation="Sixt, Granz & Landgraf. When Explanations Lie: Why Many Modified BP Attributions Fail. ICML 2020. "
             "arXiv:1912.09818; Hedström et al. Quantus. JMLR 24(34), 2023",
    rule="similarity of the maps for the target and a random other class"))
