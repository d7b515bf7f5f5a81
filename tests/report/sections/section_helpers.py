"""Run one registered section over test inputs and render its template as the page assembly does."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from salbench.report.assemble import environment, load_context, page_globals
from salbench.report.sections import SectionContext, get_section, run_section


def run(name: str, tmp_path: Path, config: dict[str, Any], inputs: dict[str, list[Path]],
        needed: dict[str, Path] | None = None) -> tuple[Path, dict[str, Any]]:
    """Run section ``name`` into ``tmp_path/<name>``; its folder and its context as the page reads it."""
    ctx = SectionContext(study=str(config.get("study", "test")), config=config,
                         inputs={k: [Path(p) for p in v] for k, v in inputs.items()}, out=tmp_path / name,
                         needed=needed or {})
    folder = run_section(name, ctx, table=tmp_path / "tables" / f"{name}.parquet")
    return folder, load_context(folder)


def render(name: str, context: dict[str, Any], config: dict[str, Any]) -> str:
    """The section's body as the page shows it ('' for an empty section)."""
    if "empty" in context:
        return ""
    section = get_section(name)
    page = {**page_globals(str(config.get("study", "test")), config), "method_pages": True}
    return environment().get_template(section.template).render(section=context, s=section, page=page, root="")


def method_page(folders: dict[str, Path], config: dict[str, Any], method: str, out: Path) -> str:
    """The page of ``method`` in a report assembled from ``folders`` (section name -> folder)."""
    from salbench.report.assemble import render_page

    index = render_page(str(config.get("study", "test")), folders, out, config)
    return (index.parent / "methods" / f"{method}.html").read_text(encoding="utf-8")
