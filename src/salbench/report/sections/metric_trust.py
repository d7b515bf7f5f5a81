"""How far to trust each metric: its meta-evaluation (MetaQuantus' noise resilience and adversarial reactivity,
Hedström et al., TMLR 2023) and the rankings that survive its own settings (mean resilience rank, Wickstrøm, Höhne
& Hedström 2024), from the ``meta_evaluate`` jobs' tables (:mod:`salbench.report.meta`)."""

from __future__ import annotations

from typing import Any

from .base import Section, SectionContext, register_section


def aggregate(ctx: SectionContext) -> dict[str, Any]:
    from ..meta import load_section, pair_tables
    from ...meta_config import COMPONENTS

    section = load_section(ctx.files("meta"))
    if section is None:
        return {"empty": "Not run: the study config has no meta_evaluation section (the demo's shows how to "
                         "declare one)."}
    csv = ctx.write_table(section.meta)
    resilience_csv = ctx.write_table(section.resilience, "resilience") if not section.resilience.empty else None
    pairs = pair_tables(section)
    by_method: dict[str, dict[str, list[dict[str, Any]]]] = {}
    for pair in pairs:
        for metric in pair["resilience"]:
            for row in metric["methods"]:
                by_method.setdefault(row["method"], {"resilience": []})["resilience"].append(
                    {"dataset": pair["dataset"], "model": pair["model"], "metric": metric["metric"],
                     "n_settings": metric["n_settings"], **row})
    return {"components": list(COMPONENTS), "pairs": pairs, "csv": csv, "resilience_csv": resilience_csv,
            "by_method": by_method}


SECTION = register_section(Section(
    name="metric_trust", title="How far to trust each metric", order=38, aggregate=aggregate,
    description="Each metric's meta-evaluation (MetaQuantus components and verdict) and the methods' mean "
                "resilience ranks over the metric's declared settings",
    inputs=("meta",), config_keys=(),
))
