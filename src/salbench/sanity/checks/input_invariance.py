"""Input invariance (Kindermans et al. 2019): a mean shift the model compensates exactly leaves maps unchanged."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pandas as pd

from .base import Check, register_check

if TYPE_CHECKING:
    from ..run import CheckJob

NAME = "input_invariance"


def compute(job: "CheckJob") -> list[pd.DataFrame]:
    """Relative L1 and max differences of the maps of the mean-shifted and original models."""
    from ..invariance import input_invariance

    values = input_invariance(job.method, job.model, job.images, job.targets, job.settings.input_shift,
                              batch_size=job.batch_size, device=job.device, maps=job.original())
    return [job.rows(NAME, statistic, value) for statistic, value in values.items()]


register_check(Check(
    sensitivity="input",
    name=NAME, compute=compute, statistic="relative_l1", passes_when="below", threshold=0.05,
    description="a mean shift the model compensates exactly leaves the maps unchanged (Kindermans et al. 2019)",
    citation="Kindermans, Hooker, Adebayo, Alber, Schütt, Dähne, Erhan & Kim. The (Un)reliability of Saliency "
             "Methods. Explainable AI, LNCS 11700, 2019. arXiv:1711.00867",
    rule="relative L1 difference of the maps of the mean-shifted and original models"))
