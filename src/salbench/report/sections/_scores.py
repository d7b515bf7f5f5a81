"""The study's per-item scores as the leaderboard and ranks sections read them (no section of its own).

The score jobs' tables and the grid localisation jobs' tables (whose grid metric is one more localisation
metric), with each metric's info, family and report order, and the study's methods and controls.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .base import SectionContext

if TYPE_CHECKING:
    import pandas as pd

#: the config keys these sections read: the bootstrap, the methods (controls) and the metrics (their info)
CONFIG_KEYS = ("seed", "report.bootstrap", "methods", "metrics", "grid")


@dataclass(frozen=True)
class StudyScores:
    """Tidy per-item scores with what the report needs to order and orient them."""

    scores: "pd.DataFrame"
    metric_info: dict[str, dict[str, Any]]
    #: metric -> family (localisation, faithfulness, complexity, ...)
    families: dict[str, str]
    #: the scored metrics, grouped by family in report order
    metrics: list[str]
    #: the study's methods in report order (controls last)
    methods: list[str]
    controls: set[str]

    def by_family(self, present: set[str] | None = None) -> list[tuple[str, list[str]]]:
        """``(family, its metrics)`` in report order (only the metrics in ``present``, when given)."""
        groups: dict[str, list[str]] = {}
        for metric in self.metrics:
            if present is None or metric in present:
                groups.setdefault(self.families[metric], []).append(metric)
        return list(groups.items())


def study_scores(ctx: SectionContext) -> StudyScores:
    """Load the ``scores`` and ``grids`` input groups (checksums verified)."""
    from ..section_inputs import study_methods
    from ..tables import load_scores, metric_families, metric_order

    scores = load_scores([*ctx.files("scores"), *ctx.files("grids")])
    info = ctx.metric_info()
    families = metric_families(ctx.config, info)
    metrics = metric_order({m: families[m] for m in set(scores["metric"])})
    methods, controls = study_methods(ctx.config, scores["method"])
    return StudyScores(scores, info, families, metrics, methods, controls)


def pair_anchor(section: str, dataset: str, model: str) -> str:
    """The page anchor of a (data set, model) part of a section: ``<section>-<dataset>--<model>``."""
    return f"{section}-{dataset}--{model}"
