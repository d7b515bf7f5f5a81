"""The report's methods section: how each seed method follows its authors' code (``docs/fidelity.md``).

``docs/fidelity.md`` keeps one Markdown table of every seed method's reference file and each deliberate
difference from it (what, why, expected effect on the numbers). The report shows that table beside the
methods the study ran, so a reader judging a verdict sees at once where our implementation is not the
authors'.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

#: the table's columns, in order, as ``docs/fidelity.md`` writes them
COLUMNS = ("method", "reference", "difference", "why", "effect on the numbers")
ANCHOR = "fidelity"


@dataclass(frozen=True)
class FidelitySection:
    """The fidelity table's rows (cells as written, Markdown inline code kept) and where it came from."""

    rows: list[dict[str, str]]
    source: str


def read_fidelity(path: Path) -> FidelitySection:
    """The first Markdown table of ``path`` whose header is :data:`COLUMNS`; a clear error when there is none."""
    rows: list[dict[str, str]] | None = None
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        cells = _cells(line)
        if cells is None:
            if rows is not None:
                break
            continue
        if rows is None:
            if tuple(c.lower() for c in cells) == COLUMNS:
                rows = []
            continue
        if all(set(c) <= set("-: ") for c in cells):
            continue  # the separator row under the header
        if len(cells) != len(COLUMNS):
            raise ValueError(f"{path}: fidelity table row has {len(cells)} cells, expected {len(COLUMNS)}: {line!r}")
        rows.append(dict(zip(COLUMNS, cells)))
    if not rows:
        raise ValueError(f"{path}: no fidelity table with the columns {' | '.join(COLUMNS)}")
    return FidelitySection(rows=rows, source=Path(path).name)


def _cells(line: str) -> list[str] | None:
    """The cells of a Markdown table row (escaped pipes ``\\|`` kept inside a cell); None for other lines."""
    line = line.strip()
    if not (line.startswith("|") and line.endswith("|")):
        return None
    return [c.strip().replace("\\|", "|") for c in re.split(r"(?<!\\)\|", line[1:-1])]


def segments(text: str) -> list[dict[str, object]]:
    """A cell as text segments, ``code`` set for Markdown inline code (the template wraps those in ``<code>``)."""
    return [{"text": part, "code": bool(i % 2)} for i, part in enumerate(text.split("`")) if part]


def table_rows(section: FidelitySection, methods: list[str]) -> list[dict[str, object]]:
    """The table's rows as segments per column, ``ran`` False for a row naming only methods this study did not
    run (the page greys it)."""
    ran = set(methods)
    return [{"ran": bool(method_names(row["method"]) & ran or not method_names(row["method"])),
             "cells": [segments(row[c]) for c in COLUMNS]} for row in section.rows]


def method_names(cell: str) -> set[str]:
    """The registered method names a row's method cell gives in inline code (``rap``, ``rsp``, ...)."""
    return set(re.findall(r"`([A-Za-z0-9_@.-]+)`", cell))
