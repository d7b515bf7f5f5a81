"""Implementation agreement: the same method from other libraries (registered variants ``method@library``) against
ours, item by item, with the measured cause of each disagreement, and TorchRay's vs Quantus' pointing game. Where
the model checkpoints are given (input group ``variant_models``: ``DATASET/MODEL=PATH``) the variants are re-run with each subset of their
parameter alignments, so this section runs models: its rule gets the GPU resource. The analysis is
:mod:`salbench.report.agreement`'s."""

from __future__ import annotations

from typing import Any

from .base import Section, SectionContext, register_section

EMPTY = ("No library variants (method@library, e.g. gradcam@captum) ran in this study, and no method was scored by "
         "both pointing-game protocols.")


def aggregate(ctx: SectionContext) -> dict[str, Any]:
    import pandas as pd

    from .. import agreement
    from ..section_inputs import records
    from ..tables import SCORE_COLUMNS, load_scores

    stores, score_files = ctx.files("maps"), ctx.files("scores")
    scores = load_scores(score_files) if score_files else pd.DataFrame(columns=SCORE_COLUMNS)
    result = agreement.analyse(stores, scores,
                               checkpoints=ctx.variant_checkpoints(),
                               data_stores=ctx.data_stores())
    if result.empty:
        return {"empty": EMPTY}
    csv = ctx.write_table(result.pairs)
    tables = {name: ctx.write_table(frame, name) for name, frame in
              (("steps", result.steps), ("reruns", result.reruns), ("scores", result.scores),
               ("protocols", result.protocols)) if not frame.empty}
    pairs, protocols = records(result.pairs), records(result.protocols)
    by_method: dict[str, dict[str, list[dict[str, Any]]]] = {}
    for row in pairs:
        for method in (row["base"], row["variant"]):
            by_method.setdefault(method, {"pairs": [], "protocols": []})["pairs"].append(row)
    for row in protocols:
        by_method.setdefault(row["method"], {"pairs": [], "protocols": []})["protocols"].append(row)
    return {"pairs": pairs, "scores": records(result.scores), "protocols": protocols, "csv": csv, "tables": tables,
            "steps": agreement.STEP_DESCRIPTIONS, "tolerance": agreement.GAP_TOLERANCE,
            "rerun_items": agreement.RERUN_ITEMS, "postprocess": agreement.POSTPROCESS, "by_method": by_method}


SECTION = register_section(Section(
    name="implementation_agreement", title="Implementation agreement", order=70, aggregate=aggregate,
    description="Library variants of a method against ours (rank correlation, max difference, the measured cause, "
                "re-runs with each parameter alignment) and the pointing game by TorchRay's and Quantus' protocols",
    inputs=("maps", "scores", "data", "variant_models"), config_keys=(), gpu=True,
))
