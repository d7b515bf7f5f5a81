"""Assemble the report page from finished section folders (``results/sections/{study}/<name>/``).

Each section folder holds its template context (``context.json``), tables and figures (see
:mod:`salbench.report.sections`). The page is rendered with Jinja2 (autoescaped, strict about undefined names):
``page.html.j2`` lays out the navigation and the sections in page order, each section's own template renders its
body. Figures of section X are copied to ``figures/X/`` of the report folder and its other files (CSV tables) to
``tables/X/``; templates name them with ``asset(s, "figures/foo.png")``. With a ``method.html.j2`` template, every
method also gets a page ``methods/<method>.html`` showing what each section says about it (its ``by_method``).
The folder is written to a temporary sibling and renamed into place.
"""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path
from typing import Any

import jinja2

from ..store import atomic_path
from .ranks import fmt_rank
from .sections import CONTEXT_FILE, MAIN_TABLE, Section, get_section
from .sections.base import FIGURES, PUBLIC

INDEX = "index.html"
METHOD_TEMPLATE = "method.html.j2"
METHODS_DIR = "methods"
TABLES = "tables"


def fmt(value: Any) -> str:
    """A number as the page shows it: three decimals for ordinary magnitudes, three significant digits otherwise;
    "n/a" for a missing value."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    if value == 0 or 1e-3 <= abs(value) < 1e4:
        return f"{value:.3f}"
    return f"{value:.3g}"


def asset_path(section: Section | str, path: str) -> str:
    """Where a file of a section folder lies in the report folder: ``figures/<x>`` -> ``figures/<section>/<x>``,
    any other file -> ``tables/<section>/<file>``."""
    name = section if isinstance(section, str) else section.name
    head, _, rest = path.partition("/")
    return f"{FIGURES}/{name}/{rest}" if head == FIGURES and rest else f"{TABLES}/{name}/{path}"


@jinja2.pass_context
def _asset(context: jinja2.runtime.Context, section: Section | str, path: str) -> str:
    """The template global ``asset``: :func:`asset_path` relative to the page being rendered (``root``)."""
    return f"{context.get('root', '')}{asset_path(section, path)}"


def environment() -> jinja2.Environment:
    """The report's Jinja2 environment: package templates, autoescaped, strict about undefined names."""
    env = jinja2.Environment(loader=jinja2.PackageLoader("salbench.report", "templates"),
                             autoescape=True, undefined=jinja2.StrictUndefined, trim_blocks=True,
                             lstrip_blocks=True, keep_trailing_newline=True)
    env.globals["asset"] = _asset
    env.filters["fmt"] = fmt
    env.filters["fmt_rank"] = fmt_rank
    return env


def load_context(folder: Path) -> dict[str, Any]:
    """A section folder's template context."""
    path = Path(folder) / CONTEXT_FILE
    if not path.is_file():
        raise FileNotFoundError(f"section folder {folder} has no {CONTEXT_FILE}: run its section first")
    return json.loads(path.read_text(encoding="utf-8"))


def page_globals(study: str, config: dict[str, Any]) -> dict[str, Any]:
    """What every template gets as ``page``: the study, its methods in report order (controls last), the
    controls, and ``method_url(name)``; :func:`render_page` adds ``method_pages`` (whether methods get pages)
    and ``interactive`` (whether a section draws interactive figures: the page loads plotly.js once)."""
    from .tables import control_methods, method_order

    names = list(config.get("methods") or {})
    controls = control_methods(config, names)
    return {"study": study, "methods": method_order(names, controls), "controls": sorted(controls),
            "method_url": lambda name: f"{METHODS_DIR}/{name}.html", "method_pages": False, "interactive": False}


def render_page(study: str, section_folders: dict[str, Path], out_dir: Path, config: dict[str, Any]) -> Path:
    """Write the report folder ``out_dir`` (``index.html``, ``figures/``, ``tables/``, ``methods/``) from the
    section folders (section name -> folder); return its index.html."""
    env = environment()
    sections = sorted((get_section(name) for name in section_folders), key=lambda s: (s.order, s.name))
    contexts = {s.name: load_context(section_folders[s.name]) for s in sections}
    page = {**page_globals(study, config), "method_pages": _has_template(env, METHOD_TEMPLATE),
            "interactive": any(c.get("interactive") for c in contexts.values())}
    out_dir = Path(out_dir)
    with atomic_path(out_dir) as tmp:
        tmp.mkdir(parents=True)
        for section in sections:
            _copy_assets(Path(section_folders[section.name]), section.name, tmp)
        if page["interactive"]:  # plotly.js, once, for the sections' interactive figures
            from .interactive import write_assets

            write_assets(tmp)
        bodies = {s.name: _render_section(env, s, contexts[s.name], page) for s in sections}
        html = env.get_template("page.html.j2").render(page=page, sections=sections, contexts=contexts,
                                                        bodies=bodies, root="")
        (tmp / INDEX).write_text(html, encoding="utf-8")
        if page["method_pages"]:
            template = env.get_template(METHOD_TEMPLATE)
            for method in page["methods"]:
                by_method = {s.name: (contexts[s.name].get("by_method") or {}).get(method) for s in sections}
                path = tmp / METHODS_DIR / f"{method}.html"
                path.parent.mkdir(exist_ok=True)
                path.write_text(template.render(page=page, method=method, sections=sections, contexts=contexts,
                                                by_method=by_method, root="../"), encoding="utf-8")
    return out_dir / INDEX


def _render_section(env: jinja2.Environment, section: Section, context: dict[str, Any], page: dict[str, Any]) -> str:
    """A section's body: its template, or nothing when it has nothing to show (the page says why)."""
    if "empty" in context:
        return ""
    try:
        return env.get_template(section.template).render(section=context, s=section, page=page, root="")
    except jinja2.TemplateError as err:
        raise ValueError(f"section {section.name!r}: template {section.template} fails: {err}") from err


def _has_template(env: jinja2.Environment, name: str) -> bool:
    try:
        env.get_template(name)
    except jinja2.TemplateNotFound:
        return False
    return True


def _copy_assets(folder: Path, name: str, out: Path) -> None:
    """Copy a section folder's figures to ``figures/<name>/``, its ``public/`` files to the same path under the report
    (the saliency cards' ``cards/<method>.json``) and its other files (CSV tables; not its context, its parquet
    tables or Snakemake's hidden files) to ``tables/<name>/``."""
    for path in sorted(folder.rglob("*")):
        rel = path.relative_to(folder).as_posix()
        if not path.is_file() or any(part.startswith(".") for part in path.relative_to(folder).parts):
            continue
        if rel in (CONTEXT_FILE, MAIN_TABLE) or path.suffix == ".parquet":
            continue
        head, _, rest = rel.partition("/")
        target = out / rest if head == PUBLIC and rest else out / asset_path(name, rel)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, target)


def run_sections(study: str, config: dict[str, Any], inputs: dict[str, list[Path]], sections_dir: Path,
                 tables_dir: Path | None = None, names: list[str] | None = None) -> dict[str, Path]:
    """Run sections ``names`` (default: every registered one) as the workflow does, in one process: needed ones
    first, each into ``sections_dir/<name>`` with only its input groups and config keys (a notebook, the tests).
    Returns section name -> folder."""
    from .sections.base import SectionContext, dependency_order, run_section, section_config

    folders: dict[str, Path] = {}
    for name in dependency_order(names):
        section = get_section(name)
        ctx = SectionContext(study=study, config=section_config(section, config),
                             inputs={g: list(inputs.get(g, [])) for g in section.inputs},
                             out=Path(sections_dir) / name, needed={n: folders[n] for n in section.needs})
        folders[name] = run_section(name, ctx, None if tables_dir is None else Path(tables_dir) / f"{name}.parquet")
    return folders
