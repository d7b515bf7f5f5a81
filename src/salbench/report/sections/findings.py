"""Findings, the report's first screen: which methods can be trusted here and which do best.

Read from the other sections' tables, nothing recomputed: the overview matrix per data set and model (methods x
{each sanity check's verdict, each metric family's mean rank}; a family cell is coloured by whether the method
beats the best control on the family's metrics), the best method per metric family, the claims tally (reproduced,
not reproduced, inconclusive, not run) and the controls' self-test (whether each control method fails the checks
it must fail; Adebayo et al., NeurIPS 2018; the check registry's ``controls``). Every part links to its section.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from .base import Section, SectionContext, register_section

if TYPE_CHECKING:
    from pathlib import Path

    import pandas as pd

NAME = "findings"
PASS, FAIL, INCONCLUSIVE, UNTRUSTED = "pass", "fail", "inconclusive", "untrusted"
CLAIM_OUTCOMES = ("reproduced", "not reproduced", "inconclusive", "not run")


def aggregate(ctx: SectionContext) -> dict[str, Any]:
    from ..section_inputs import study_methods

    summary, ranks, verdicts, claims = (needed_table(ctx, name)
                                        for name in ("leaderboard", "ranks", "sanity", "claims"))
    if summary.empty and verdicts.empty:
        return {"empty": "Nothing to summarise: the study scored no method and ran no sanity check."}
    present = [*(summary["method"] if not summary.empty else []), *(verdicts["method"] if not verdicts.empty else [])]
    methods, controls = study_methods(ctx.config, present)
    families = {m["name"]: m["family"] for m in ctx.context_of("leaderboard").get("metrics", [])} \
        if not summary.empty else {}
    pairs = sorted({*zip(summary.get("dataset", []), summary.get("model", [])),
                    *zip(verdicts.get("dataset", []), verdicts.get("model", []))})
    overview = [overview_matrix(summary, ranks, verdicts, families, methods, controls, d, m) for d, m in pairs]
    for pair in overview:
        name = f"overview_{pair['dataset']}_{pair['model']}.png"
        overview_figure(pair, ctx.figure(name))
        pair["png"] = f"figures/{name}"
    return {
        "pairs": overview,
        "claims": claim_tally(claims) if not claims.empty else None,
        "self_test": self_test(verdicts) if not verdicts.empty else None,
        "n_methods": len(methods), "n_controls": len(controls),
    }


def needed_table(ctx: SectionContext, name: str) -> "pd.DataFrame":
    """A needed section's main table, empty when the section had nothing to show."""
    import pandas as pd

    if "empty" in ctx.context_of(name):
        return pd.DataFrame()
    return ctx.read_needed(name)


def check_status(row: dict[str, Any]) -> str:
    """A verdict's colour: untrusted (a control passes the check, or it rewards noise), else pass or fail when the
    interval agrees with the point estimate, inconclusive when it does not."""
    from ..cards import flag

    if flag(row.get("trustworthy")) is False or flag(row.get("rewards_noise")) is True:
        return UNTRUSTED
    if not row["decisive"]:
        return INCONCLUSIVE
    return PASS if row["passed"] else FAIL


def overview_matrix(summary: "pd.DataFrame", ranks: "pd.DataFrame", verdicts: "pd.DataFrame",
                    families: dict[str, str], methods: list[str], controls: set[str], dataset: str,
                    model: str) -> dict[str, Any]:
    """One (data set, model)'s overview: a column per sanity check (registry order) and per metric family (report
    order), a row per method (best mean rank over the families first, controls last), and the best method of each
    family."""
    from ..sanity import check_meanings

    def part(frame: "pd.DataFrame") -> "pd.DataFrame":
        return frame[(frame["dataset"] == dataset) & (frame["model"] == model)] if not frame.empty else frame

    verdicts, summary, ranks = part(verdicts), part(summary), part(ranks)
    ran = set(verdicts["check"]) if not verdicts.empty else set()
    checks = [c for c in [*check_meanings(), *sorted(ran - set(check_meanings()))] if c in ran]
    family_order = list(dict.fromkeys(families[m] for m in families if not summary.empty
                                      and m in set(summary["metric"])))
    by_check = {(r["method"], r["check"]): r for r in verdicts.to_dict("records")} if not verdicts.empty else {}
    standing = {(method, family): _standing(summary, ranks, families, method, family)
                for method in methods for family in family_order}
    shown = [m for m in methods if any((m, c) in by_check for c in checks)
             or any(standing[(m, f)]["rank"] is not None for f in family_order)]

    def mean_rank(method: str) -> float:
        values = [standing[(method, f)]["rank"] for f in family_order if standing[(method, f)]["rank"] is not None]
        return sum(values) / len(values) if values else math.inf

    shown.sort(key=lambda m: (m in controls, mean_rank(m), m))
    anchor = f"{dataset}--{model}"
    columns = [{"kind": "check", "name": c, "href": f"#sanity-{anchor}", "trust": _trust(verdicts, c)} for c in checks]
    columns += [{"kind": "family", "name": f, "href": f"#leaderboard-{anchor}--{f}", "trust": None}
                for f in family_order]
    rows = []
    for method in shown:
        cells = []
        for c in checks:
            r = by_check.get((method, c))
            cells.append(None if r is None else {
                "status": check_status(r), "text": ("pass" if r["passed"] else "fail") + ("" if r["decisive"] else "?"),
                "title": f"{c}: {r['value']:.3g} [{r['ci_low']:.3g}, {r['ci_high']:.3g}], passes {r['passes_when']} "
                         f"{r['threshold']:g}"})
        cells += [standing[(method, f)] if standing[(method, f)]["rank"] is not None else None for f in family_order]
        rows.append({"method": method, "control": method in controls, "cells": cells})
    best = []
    for family in family_order:
        ranked = [(standing[(m, family)]["rank"], m) for m in shown
                  if m not in controls and standing[(m, family)]["rank"] is not None]
        if ranked:
            rank, method = min(ranked)
            best.append({"family": family, "method": method, "rank": rank, "href": f"#leaderboard-{anchor}--{family}",
                         "status": standing[(method, family)]["status"]})
    return {"dataset": dataset, "model": model, "id": f"findings-{anchor}", "columns": columns, "rows": rows,
            "best": best}


#: cell colours of the static overview figure (the page's badges' colours)
FIGURE_COLOURS = {PASS: "#d7f0dd", FAIL: "#f8d7d4", INCONCLUSIVE: "#fdf0c4", UNTRUSTED: "#e5e7eb", "": "#ffffff"}


def overview_figure(pair: dict[str, Any], path: "Path") -> "Path":
    """The overview matrix of one (data set, model) as a static figure (the snakemake report's, and the page's
    download): a coloured cell per method and column holding the verdict or the mean rank."""
    import matplotlib
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.patches import Rectangle

    from ..figures import RC, _save  # (selects the Agg backend)

    columns, rows = pair["columns"], pair["rows"]
    with matplotlib.rc_context(RC):
        fig = Figure(figsize=(1.6 + 1.05 * max(len(columns), 1), 0.9 + 0.24 * max(len(rows), 1)))
        FigureCanvasAgg(fig)
        ax = fig.subplots()
        for i, row in enumerate(rows):
            for j, cell in enumerate(row["cells"]):
                status, text = ("", "") if cell is None else (cell["status"], cell["text"])
                ax.add_patch(Rectangle((j, i), 1, 1, facecolor=FIGURE_COLOURS.get(status, "#fff"),
                                       edgecolor="#ccc", linewidth=0.5))
                ax.text(j + 0.5, i + 0.5, text, ha="center", va="center", fontsize=7)
        ax.set_xlim(0, len(columns))
        ax.set_ylim(len(rows), 0)
        ax.set_xticks([j + 0.5 for j in range(len(columns))],
                      [c["name"].replace("_", " ") + ("\n(mean rank)" if c["kind"] == "family" else "")
                       for c in columns], rotation=30, ha="left", fontsize=7)
        ax.xaxis.tick_top()
        ax.set_yticks([i + 0.5 for i in range(len(rows))],
                      [r["method"] + (" (control)" if r["control"] else "") for r in rows], fontsize=7)
        ax.tick_params(length=0)
        for spine in ax.spines.values():
            spine.set_visible(False)
        ax.set_title(f"{pair['dataset']} / {pair['model']}", fontsize=9, loc="left", pad=40)
        _save(fig, path, ("png",))
    return path


def _trust(verdicts: "pd.DataFrame", check: str) -> str:
    """A check's column note: validated by its controls, not trustworthy, rewards noise, or no control."""
    from ..cards import flag

    first = verdicts[verdicts["check"] == check].iloc[0]
    if flag(first.get("rewards_noise")) is True:
        return "rewards noise"
    return {True: "validated", False: "not trustworthy", None: "no control"}[flag(first.get("trustworthy"))]


def _standing(summary: "pd.DataFrame", ranks: "pd.DataFrame", families: dict[str, str], method: str,
              family: str) -> dict[str, Any]:
    """A method's cell of a family: its mean rank over the family's metrics, coloured pass when it beats the best
    control on every one of them, fail on none, inconclusive in between (no colour for a control)."""
    metrics = {m for m, f in families.items() if f == family}
    mine = ranks[(ranks["method"] == method) & ranks["metric"].isin(metrics)] if not ranks.empty else ranks
    values = summary[(summary["method"] == method) & summary["metric"].isin(metrics)]
    if mine.empty or mine["rank"].isna().all():
        return {"rank": None, "status": "", "text": "", "title": ""}
    from ..cards import beats_status

    rank = float(mine["rank"].mean())
    status = beats_status(values["beats_controls"])
    beats = values["beats_controls"].dropna().astype(bool)
    of = int(mine["n_ranked"].max())
    title = f"mean rank {rank:.1f} of {of} over {', '.join(sorted(set(mine['metric'])))}"
    if status:
        title += f"; beats the best control on {int(beats.sum())} of {len(beats)}"
    return {"rank": rank, "status": status, "text": f"{rank:.1f}", "title": title}


def claim_tally(claims: "pd.DataFrame") -> dict[str, Any]:
    """Claims (not rows) per outcome: reproduced when every data set and model it ran on reproduces it with an
    interval that agrees, not reproduced when one decisively does not, inconclusive otherwise, not run when none
    ran."""
    from ..cards import flag

    tally = dict.fromkeys(CLAIM_OUTCOMES, 0)
    for _, rows in claims.groupby("id", sort=False):
        ran = rows[rows["outcome"] != "not run"]
        decisive = ran["decisive"].map(lambda v: flag(v) is True)
        if ran.empty:
            tally["not run"] += 1
        elif ((ran["outcome"] == "not reproduced") & decisive).any():
            tally["not reproduced"] += 1
        elif (ran["outcome"] == "reproduced").all() and decisive.all():
            tally["reproduced"] += 1
        else:
            tally["inconclusive"] += 1
    return {"counts": [{"outcome": k, "n": v} for k, v in tally.items()], "total": sum(tally.values())}


def self_test(verdicts: "pd.DataFrame") -> dict[str, Any]:
    """Whether each control method fails the checks it must fail (the check registry's ``controls``), and how many
    checks its controls validate."""
    from ...sanity.checks import controls as check_controls

    must_fail = check_controls()
    names = verdicts["method_name"] if "method_name" in verdicts else verdicts["method"]
    controls = []
    for method in sorted(set(verdicts.loc[names.isin(list(must_fail)), "method"])):
        rows = verdicts[(verdicts["method"] == method)]
        registered = str(names[rows.index[0]])
        rows = rows[rows["check"].isin(must_fail[registered])]
        if rows.empty:
            continue
        passes = sorted(rows.loc[rows["passed"].astype(bool), "check"])
        controls.append({"method": method, "registered": registered, "must_fail": len(rows),
                         "fails": len(rows) - len(passes), "passes": passes})
    trust = [_trust(verdicts, c) for c in sorted(set(verdicts["check"]))]
    return {"controls": controls, "checks": len(trust),
            "validated": trust.count("validated"), "untrusted": sum(t in ("not trustworthy", "rewards noise")
                                                                     for t in trust),
            "no_control": trust.count("no control"), "ok": all(not c["passes"] for c in controls)}


SECTION = register_section(Section(
    name=NAME, title="Findings", order=0, aggregate=aggregate,
    description="The first screen: methods x (sanity verdicts, metric-family ranks) per data set and model, the "
                "best method per family, the claims tally and the controls' self-test, each linking to its section",
    needs=("leaderboard", "ranks", "sanity", "claims"), config_keys=("methods",),
))
