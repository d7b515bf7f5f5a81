"""Published claims: each statement of ``config/claims.yaml`` and the study config's ``references`` checked
against this study's tables (the leaderboard's summary, the sanity verdicts, the per-item scores), with the
tally the findings show first. The claims and their evaluation are :mod:`salbench.report.claims`'."""

from __future__ import annotations

from typing import Any

from .base import Section, SectionContext, register_section


def aggregate(ctx: SectionContext) -> dict[str, Any]:
    import pandas as pd

    from ...snapshot import load_catalog
    from .. import claims
    from ..section_inputs import bootstrap_settings
    from ..tables import load_scores

    catalog = load_catalog()
    path = ctx.file("claims")
    claim_list = claims.reference_claims(ctx.config) + (claims.load_claims(path, catalog) if path else [])
    if not claim_list:
        return {"empty": "No claims were given (config keys 'report.claims' and 'references')."}
    summary = ctx.read_needed("leaderboard")
    verdicts = pd.DataFrame() if "empty" in ctx.context_of("sanity") else ctx.read_needed("sanity")
    info = {r.metric: {"aggregate": r.aggregate, "higher_is_better": bool(r.higher_is_better)}
            for r in summary.drop_duplicates("metric").itertuples()}
    n_boot, seed = bootstrap_settings(ctx.config)
    table = claims.evaluate(claim_list, claims.Tables(config=ctx.config, scores=load_scores(ctx.files("scores")),
                                                      summary=summary, verdicts=verdicts, metric_info=info,
                                                      n_boot=n_boot, seed=seed), catalog)
    csv = ctx.write_table(table)
    return {"claims": claims.grouped(table), "tally": claims.counts(table), "csv": csv,
            "claims_file": claims.shown_path(path), "evidence": claims.EVIDENCE_MEANING,
            "by_method": {m: {"claims": rows} for m, rows in claims.claims_by_method(table).items()}}


SECTION = register_section(Section(
    name="claims", title="Published claims", order=40, aggregate=aggregate,
    description="Statements from the literature (config/claims.yaml, the config's references) checked against the "
                "study's tables: reproduced, not reproduced or not run, with 95% intervals",
    inputs=("claims", "scores"), needs=("leaderboard", "sanity"),
    config_keys=("seed", "report.bootstrap", "references", "datasets", "models", "methods", "metrics"),
))
