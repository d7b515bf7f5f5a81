"""Saliency cards (Boggust et al., FAccT 2023): one card per method, every attribute filled from this study's
measurements (maps stores' seeds, devices and runtimes; the catalog; the sanity verdicts; the leaderboard and
ranks) with pass / fail / inconclusive and a link to its evidence. The page shows the methods x attributes matrix;
each method's page its whole card; ``cards/<method>.json`` (written to ``public/cards/`` of the section folder,
copied to the report folder's root) holds it as data. The attribute rules are :mod:`salbench.report.cards`'."""

from __future__ import annotations

import json
from typing import Any

from .base import PUBLIC, Section, SectionContext, register_section

NAME = "cards"
#: the section folder's files the assembly copies to the report folder's root (``public/cards/x.json`` ->
#: ``cards/x.json``)


def aggregate(ctx: SectionContext) -> dict[str, Any]:
    import pandas as pd

    from ...snapshot import load_catalog
    from ...store import open_store
    from .. import cards
    from ..section_inputs import families_of, study_methods
    from .findings import needed_table

    runs, stored_params = [], {}
    for path in ctx.files("maps"):
        ds = open_store(path)
        runs.append(cards.run_of(dict(ds.attrs), ds.sizes["item"]))
        stored_params.setdefault(runs[-1].method, dict(ds.attrs.get("method_params") or {}))
    summary, ranks, verdicts = (needed_table(ctx, name) for name in ("leaderboard", "ranks", "sanity"))
    metric_families = {m["name"]: m["family"] for m in ctx.context_of("leaderboard").get("metrics", [])}
    methods, controls = study_methods(ctx.config, [r.method for r in runs]
                                      + (list(summary["method"]) if not summary.empty else []))
    if not methods:
        return {"empty": "No methods to describe: the study stored no maps and scored no method."}
    catalog = load_catalog()
    family_of = {m: f for f, members in families_of(methods, ctx.config, catalog) for m in members}
    specs = ctx.config.get("methods") or {}
    registered = {m: str((specs.get(m) or {}).get("method", m)) for m in methods}
    entries = {m: _entry(catalog, registered[m]) for m in methods}
    params = {m: stored_params.get(m) or {**entries[m].get("params", {}), **((specs.get(m) or {}).get("params") or {})}
              for m in methods}
    medians = cards.cost_medians(runs, controls)
    out, rows = {}, []
    for method in methods:
        mine = [r for r in runs if r.method == method]
        variants = {m: params[m] for m in methods if registered[m] == registered[method]}

        def of(frame: pd.DataFrame) -> pd.DataFrame:
            return frame[frame["method"] == method] if not frame.empty else frame

        attributes = [
            cards.determinism(mine, "seed" in {**entries[method].get("params", {}), **params[method]},
                              "index.html#overview"),
            cards.hyperparameters(method, params[method], variants, ranks, "index.html#ranks"),
            cards.agnosticism(entries[method], f"methods/{method}.html#about"),
            cards.efficiency(mine, medians, "index.html#overview"),
            *(cards.sensitivity(name, of(verdicts), "index.html#sanity") for name in cards.SENSITIVITY),
            *(cards.standing(name, of(summary), of(ranks), metric_families, "index.html#leaderboard")
              for name in cards.STANDING),
        ]
        card = cards.card(method, registered=registered[method], entry=entries[method], params=params[method],
                          family=family_of.get(method, ""), control=method in controls, attributes=attributes,
                          runs=mine, study=ctx.study)
        path = ctx.out / PUBLIC / NAME / f"{method}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(card, indent=1, sort_keys=True, allow_nan=False) + "\n", encoding="utf-8")
        out[method] = card
        rows += [{"method": method, **a} for a in card["attributes"]]
    csv = ctx.write_table(pd.DataFrame(rows))
    return {
        "attributes": [{"name": name, "group": group} for name, group in cards.ATTRIBUTES],
        "rows": [{"method": m, "control": m in controls, "counts": out[m]["counts"],
                  "cells": [{"status": a["status"], "summary": a["summary"]} for a in out[m]["attributes"]]}
                 for m in methods],
        "reference": cards.REFERENCE, "cost_ratio": cards.COST_RATIO,
        "sensitivity": {name: list(cards.sensitivity_checks(name)) for name in cards.SENSITIVITY},
        "csv": csv, "by_method": {m: {"card": card} for m, card in out.items()},
    }


def _entry(catalog: dict[str, Any], registered: str) -> dict[str, Any]:
    """A registered method's catalog entry (a library variant ``base@library`` falls back to its base's)."""
    methods = catalog.get("methods") or {}
    return methods.get(registered) or methods.get(registered.partition("@")[0]) or {}


SECTION = register_section(Section(
    name=NAME, title="Saliency cards", order=5, aggregate=aggregate,
    description="A saliency card per method (Boggust et al., FAccT 2023): determinism, hyperparameter dependence, "
                "model agnosticism, measured cost, input/label/model sensitivity and metric-family standing, each "
                "pass/fail/inconclusive from this study's measurements; cards/<method>.json",
    inputs=("maps",), needs=("leaderboard", "ranks", "sanity"), config_keys=("seed", "report", "methods"),
))
