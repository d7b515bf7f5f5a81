"""Input sensitivity (Akhtar & Jalwana 2023): a map must follow its image, not be input-agnostic."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pandas as pd

from .base import Check, register_check

if TYPE_CHECKING:
    from ..run import CheckJob

NAME = "input_sensitivity"


def compute(job: "CheckJob") -> list[pd.DataFrame]:
    """Within-image (noisy copy), cross-image (another image, same target) similarity and their gap."""
    from ..input_sensitivity import input_sensitivity

    s = job.settings
    values = input_sensitivity(job.method, job.model, job.images, job.targets, job.original(), job.similarity,
                               s.measure, s.noise_std, job.seed, job.batch_size, job.device)
    return [job.rows(NAME, statistic, value) for statistic, value in values.items()]


register_check(Check(
    sensitivity="input",
    name=NAME, compute=compute, statistic="gap", passes_when="above", threshold=0.1, controls=("centre",),
    description="maps of an image are closer to its noisy copy's than to another image's (input-agnostic test)",
    citation="Akhtar & Jalwana. Rethinking Interpretation: Input-Agnostic Saliency Mapping of Deep Visual "
             "Classifiers. AAAI 2023. arXiv:2303.17836",
    rule="within-image minus cross-image map similarity"))
