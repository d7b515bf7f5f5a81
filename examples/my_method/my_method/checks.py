"""Target dependence: an example sanity-check plugin (a map must change with the class it explains).

The method's map for each item's target against its map for another class (the next one, modulo the model's
classes), by the study's similarity measure (``sanity.measure``). A map that ignores the class it is asked to
explain (an edge detector, or a modified back-propagation rule that reconstructs the image, Sixt et al. 2020)
scores about 1; the check passes when the mean similarity is below 0.9.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from salbench.sanity.checks import MEASURE, Check

NAME = "target_dependence"


def compute(job: Any) -> list[pd.DataFrame]:
    """Per item: the similarity of the target's map to the next class's map (the job's :class:`CheckJob`)."""
    import torch

    from salbench.sanity.run import job_maps

    with torch.no_grad():
        classes = job.model(job.images[:1].to(job.device)).shape[1]
    other = job_maps(job, job.model, targets=(job.targets + 1) % classes)
    measure = job.settings.measure
    similarity = job.similarity.restrict(measure)
    values = similarity.compare(similarity.prepare(job.original()), similarity.prepare(other))[measure]
    return [job.rows(NAME, measure, values)]


TARGET_DEPENDENCE = Check(
    name=NAME, compute=compute, statistic=MEASURE, passes_when="below", threshold=0.9, controls=("sobel",),
    description="a map for the target class differs from the map for another class (class-insensitivity test)",
    citation="Sixt, Granz & Landgraf. When Explanations Lie: Why Many Modified BP Attributions Fail. ICML 2020",
    rule="similarity of the maps for the target and for the next class")
