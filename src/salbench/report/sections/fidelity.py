"""Methods: how each seed method follows its authors' code, from ``docs/fidelity.md`` (the reference file each
follows and every deliberate difference, why, and its expected effect on the numbers), beside the methods this
study ran. Parsing is :mod:`salbench.report.fidelity`'s."""

from __future__ import annotations

from typing import Any

from .base import Section, SectionContext, register_section


def aggregate(ctx: SectionContext) -> dict[str, Any]:
    import pandas as pd

    from ..fidelity import COLUMNS, method_names, read_fidelity, table_rows
    from ..section_inputs import study_methods

    path = ctx.file("fidelity")
    if path is None:
        return {"empty": "No fidelity table was given (docs/fidelity.md)."}
    table = read_fidelity(path)
    methods, _ = study_methods(ctx.config)
    rows = table_rows(table, methods)
    csv = ctx.write_table(pd.DataFrame([{**row, "ran": r["ran"]} for row, r in zip(table.rows, rows)]))
    by_method = {}
    for row, shown in zip(table.rows, rows):
        for method in method_names(row["method"]) & set(methods):
            by_method.setdefault(method, {"rows": []})["rows"].append(shown)
    return {"columns": list(COLUMNS), "rows": rows, "source": table.source, "csv": csv, "by_method": by_method}


SECTION = register_section(Section(
    name="fidelity", title="Methods: fidelity to the authors' code", order=90, aggregate=aggregate,
    description="Each seed method's reference code and every deliberate difference from it (docs/fidelity.md)",
    inputs=("fidelity",), config_keys=("methods",),
))
