"""Data randomisation (Adebayo et al. 2018): maps of a model trained on permuted labels must differ."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pandas as pd

from .base import MEASURE, Check, register_check
from .randomisation import ADEBAYO

if TYPE_CHECKING:
    from ..run import CheckJob

NAME = "data_randomisation"


def compute(job: "CheckJob") -> list[pd.DataFrame]:
    """Similarity of the permuted-label model's maps to the trained model's (none without a permuted model)."""
    if job.permuted is None:
        return []
    from ..run import job_maps

    random_labels = job_maps(job, job.permuted)
    return [job.rows(NAME, statistic, values, "random_labels", 1)
            for statistic, values in job.similarity(job.original(), random_labels).items()]


register_check(Check(
    sensitivity="label",
    name=NAME, compute=compute, citation=ADEBAYO, statistic=MEASURE, passes_when="below", threshold=0.5,
    description="maps of a model trained on permuted labels differ from the real model's (Adebayo et al. 2018)",
    rule="similarity of the random-label model's map to the trained model's"))
