"""Class sensitivity (Sixt et al. 2020; Rebuffi et al. 2020): maps for an image's two classes must differ."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pandas as pd

from .base import Check, register_check

if TYPE_CHECKING:
    from ..run import CheckJob

NAME = "class_sensitivity"


def compute(job: "CheckJob") -> list[pd.DataFrame]:
    """Similarity of the two classes' maps and the pointing hits on each item's own and the other object."""
    from ..class_sensitivity import class_sensitivity

    values = class_sensitivity(job.maps, job.masks, job.image_ids, job.similarity, job.settings.measure)
    return [job.rows(NAME, statistic, value) for statistic, value in values.items()]


register_check(Check(
    sensitivity="label",
    name=NAME, compute=compute, statistic="similarity", passes_when="below", threshold=0.5, applies_to="two_object",
    description="maps for the two classes of a two-object image differ (Sixt et al. 2020; Rebuffi et al. 2020)",
    citation="Sixt, Granz & Landgraf. When Explanations Lie: Why Many Modified BP Attributions Fail. ICML 2020. "
             "arXiv:1912.09818; Rebuffi, Fong, Ji & Vedaldi. There and Back Again: Revisiting Backpropagation "
             "Saliency Methods. CVPR 2020. arXiv:2004.02866",
    rule="similarity of the maps for an image's two classes"))
