"""The report's methods section: how each seed method follows its authors' code (``docs/fidelity.md``).

``docs/fidelity.md`` keeps one Markdown table of every seed method's reference file and each deliberate
difference from it (what, why, expected effect on the numbers). The report shows that table beside the
methods the study ran, so a reader judging a verdict sees at once where our implementation is not the
authors'.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from html import escape
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


def _inline(text: str) -> str:
    """Escaped HTML of a cell: Markdown inline code becomes ``<code>``, everything else is text."""
    parts = text.split("`")
    return "".join(f"<code>{escape(p)}</code>" if i % 2 else escape(p) for i, p in enumerate(parts))


def render(section: FidelitySection | None, methods: list[str]) -> str:
    """The section's HTML (a line saying so without a table); rows naming only methods this study did not run are
    greyed."""
    if section is None:
        return (f'<section id="{ANCHOR}">\n<h2>Methods: fidelity to the authors\' code</h2>\n<p>No fidelity table was '
                "given (<code>salbench report --fidelity docs/fidelity.md</code>).</p>\n</section>")
    ran = set(methods)
    head = "".join(f"<th>{escape(c)}</th>" for c in COLUMNS)
    body = "\n".join(
        ("<tr>" if _names(row["method"]) & ran or not _names(row["method"]) else '<tr class="weak">')
        + "".join(f"<td>{_inline(row[c])}</td>" for c in COLUMNS) + "</tr>"
        for row in section.rows)
    return "\n".join([
        f'<section id="{ANCHOR}">', "<h2>Methods: fidelity to the authors' code</h2>",
        "<p>Each seed method follows its authors' released code by default. This table (from "
        f"<code>{escape(section.source)}</code>) names the reference file each follows and every deliberate "
        "difference, why, and its expected effect on the numbers; rows of methods not run in this study are "
        "greyed.</p>",
        f'<div class="scroll"><table>\n<thead><tr>{head}</tr></thead>\n<tbody>\n{body}\n</tbody>\n</table></div>',
        "</section>",
    ])


def _names(cell: str) -> set[str]:
    """The registered method names a row's method cell gives in inline code (``rap``, ``rsp``, ...)."""
    return set(re.findall(r"`([A-Za-z0-9_@.-]+)`", cell))
