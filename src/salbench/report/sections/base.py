"""The report-section contract and registry: one entry per section of the study report.

A :class:`Section` declares what a section reads (workflow input groups, other sections' folders, config keys),
where it sits on the page, and an ``aggregate`` function that turns its inputs into a template context (plain
JSON data) plus its own tables and figures in a folder. Each section runs as its own workflow rule
(``workflow/rules/report.smk``) through :func:`run_section`, so editing one section's inputs, config keys or code
reruns that section and the page assembly (:mod:`salbench.report.assemble`), nothing else.

This module and the section declarations are cheap to import (no torch, pandas or matplotlib at module level):
the Snakefile imports them on every DAG build to generate the rules. Heavy imports go inside ``aggregate``.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from ...registry import Registry

if TYPE_CHECKING:
    import pandas as pd

#: the workflow's input groups a section may read (``workflow/rules/report.smk`` maps each to its files)
INPUT_GROUPS: tuple[str, ...] = ("scores", "curves", "maps", "data", "sanity", "cascades", "grids", "grid_maps",
                                 "claims", "fidelity", "meta", "layerwise", "layerwise_labels", "variant_models")
#: the main table of a section folder, and the context the page template gets
MAIN_TABLE = "table.parquet"
CONTEXT_FILE = "context.json"
FIGURES = "figures"
#: a section folder's files published at the same path under the report (not under its own tables folder)
PUBLIC = "public"
#: the page's and the sections' Jinja2 templates (salbench.report.assemble)
TEMPLATES_DIR = Path(__file__).resolve().parents[1] / "templates"
#: ``Section.config_keys`` of a section that reads the whole config (the overview shows it)
ALL_CONFIG_KEYS = ("*",)


@dataclass(frozen=True)
class Section:
    """One report section (see the module docstring).

    ``name`` is the registry key, the page anchor, the table stem and the rule-name suffix; ``order`` the position
    on the page (lower first); ``aggregate`` returns the template context; ``inputs`` the workflow input groups it
    reads (each in :data:`INPUT_GROUPS`); ``needs`` the sections whose folders it reads (their rules run first);
    ``config_keys`` the top-level config keys its rule passes it (and reruns it on); ``gpu`` whether it runs models;
    ``template`` its Jinja2 template (default ``sections/<name>.html.j2``).
    """

    name: str
    title: str
    description: str
    order: int
    aggregate: Callable[["SectionContext"], dict[str, Any]]
    inputs: tuple[str, ...] = ()
    needs: tuple[str, ...] = ()
    config_keys: tuple[str, ...] = ("seed", "report")  # "report.bootstrap": one entry of a config section
    gpu: bool = False
    template: str = ""

    def __post_init__(self) -> None:
        if not self.name.isidentifier() or not self.name.islower():
            raise ValueError(f"section name {self.name!r} must be a lower-case identifier (it names a rule)")
        unknown = sorted(set(self.inputs) - set(INPUT_GROUPS))
        if unknown:
            raise ValueError(f"section {self.name!r}: unknown input groups {', '.join(unknown)}; "
                             f"allowed: {', '.join(INPUT_GROUPS)}")
        if self.name in self.needs:
            raise ValueError(f"section {self.name!r} needs itself")
        if not self.template:
            object.__setattr__(self, "template", f"sections/{self.name}.html.j2")


SECTIONS: Registry[Section] = Registry("section")


def register_section(section: Section) -> Section:
    """Register ``section`` under its name (a duplicate name is an error)."""
    return SECTIONS.register(section.name, section.description)(section)


def get_section(name: str) -> Section:
    """The section registered as ``name``; an unknown name lists the allowed ones."""
    return SECTIONS.get(name)


def list_sections() -> list[str]:
    """Registered section names in page order (``order``, then name)."""
    return [e.name for e in sorted(SECTIONS.entries(), key=lambda e: (e.obj.order, e.name))]


def describe_sections() -> list[tuple[str, str]]:
    """``(name, description [reads ...])`` in page order, for ``salbench list sections``."""
    rows = []
    for name in list_sections():
        section = get_section(name)
        reads = [*section.inputs, *(f"section {n}" for n in section.needs)]
        rows.append((name, f"{section.description} [{section.title}; reads: {', '.join(reads) or 'config only'}]"))
    return rows


@dataclass
class SectionContext:
    """What a section's ``aggregate`` gets: the study, its config, its input files and its output folder.

    ``config`` holds the config keys the section declares (``Section.config_keys``, plus ``study``) when the
    workflow runs it, the whole config when a person or a test does: read only the declared keys. ``inputs`` maps
    each input group to its files (``claims``, ``fidelity``: one path). ``out`` is the section's (temporary) folder,
    renamed into ``results/sections/{study}/{name}/`` when ``aggregate`` returns; ``needed`` maps each needed
    section to its finished folder.
    """

    study: str
    config: dict[str, Any]
    inputs: dict[str, list[Path]]
    out: Path
    needed: dict[str, Path] = field(default_factory=dict)
    name: str = ""

    def files(self, group: str) -> list[Path]:
        """The files of input group ``group`` (none when the rule gave none)."""
        if group not in INPUT_GROUPS:
            raise ValueError(f"unknown input group {group!r}; allowed: {', '.join(INPUT_GROUPS)}")
        return [Path(p) for p in self.inputs.get(group, [])]

    def file(self, group: str) -> Path | None:
        """The one file of input group ``group`` (``claims``, ``fidelity``), or None."""
        files = self.files(group)
        if len(files) > 1:
            raise ValueError(f"input group {group!r} holds {len(files)} files; expected at most one")
        return files[0] if files else None

    def data_stores(self) -> dict[str, Path]:
        """Data set name -> its data store (``results/{dataset}/data.zarr``: the name is the parent folder's)."""
        return {path.parent.name: path for path in sorted(self.files("data"))}

    def variant_checkpoints(self) -> dict[tuple[str, str], Path]:
        """(data set, model) -> checkpoint of the ``variant_models`` group, whose entries read ``DATASET/MODEL=PATH``."""
        pairs = (str(item).split("=", 1) for item in self.inputs.get("variant_models", []))
        return {tuple(pair.split("/", 1)): Path(path) for pair, path in pairs}  # type: ignore[misc]

    def metric_info(self) -> dict[str, dict[str, Any]]:
        """Aggregation rule, direction, description and params of every configured metric, and the grid
        localisation metric when grids are on (needs the ``metrics`` and ``grid`` config keys)."""
        return report_metric_info(self.config)

    def write_table(self, frame: "pd.DataFrame", name: str | None = None) -> str:
        """Write a table of the section: ``None`` -> its main table (``table.parquet`` + ``<section>.csv``),
        ``"x"`` -> ``x.parquet`` + ``x.csv``; the parquet is checksummed. Returns the CSV's path relative to
        :attr:`out` (the page's download link, through the template's ``asset``)."""
        from ..tables import write_frame

        stem = name or self.name
        if not stem or "/" in stem:
            raise ValueError(f"section {self.name!r}: bad table name {stem!r}")
        write_frame(frame, self.out / (f"{stem}.parquet" if name else MAIN_TABLE))
        frame.to_csv(self.out / f"{stem}.csv", index=False)
        return f"{stem}.csv"

    def figure(self, name: str) -> Path:
        """The path of figure ``name`` (``<out>/figures/<name>``, folder made); templates refer to it as
        ``figures/<name>``."""
        path = self.out / FIGURES / name
        path.parent.mkdir(parents=True, exist_ok=True)
        return path

    def read_needed(self, section: str, table: str | None = None) -> "pd.DataFrame":
        """Table ``table`` (default: the main table) of needed section ``section``."""
        from ...store import read_table

        return read_table(self._needed(section) / (f"{table}.parquet" if table else MAIN_TABLE))

    def context_of(self, section: str) -> dict[str, Any]:
        """The template context of needed section ``section``."""
        return json.loads((self._needed(section) / CONTEXT_FILE).read_text(encoding="utf-8"))

    def _needed(self, section: str) -> Path:
        if section not in self.needed:
            raise ValueError(f"section {self.name!r} reads section {section!r}, which it does not declare in "
                             f"needs (has: {', '.join(sorted(self.needed)) or 'none'})")
        return Path(self.needed[section])


def section_config(section: Section, config: dict[str, Any]) -> dict[str, Any]:
    """What a section's rule passes it of the config: ``study`` and its ``config_keys`` (all for
    :data:`ALL_CONFIG_KEYS`), so that a change of any other key does not rerun it. A dotted key
    (``report.bootstrap``) passes one entry of a section of the config."""
    if section.config_keys == ALL_CONFIG_KEYS:
        return dict(config)
    out: dict[str, Any] = {}
    for key in ("study", *section.config_keys):
        top, _, entry = key.partition(".")
        if top not in config:
            continue
        if not entry:
            out[top] = config[top]
        elif entry in (config[top] or {}):
            out.setdefault(top, {})[entry] = config[top][entry]
    return out


def dependency_order(names: list[str] | None = None) -> list[str]:
    """Sections ``names`` (default: every registered one) with each after the sections it needs, in page order
    otherwise; a needed section that is not registered, or a cycle, is an error."""
    wanted = list_sections() if names is None else list(names)
    done: list[str] = []

    def visit(name: str, path: tuple[str, ...]) -> None:
        if name in path:
            raise ValueError(f"sections need each other in a cycle: {' -> '.join((*path, name))}")
        if name in done:
            return
        for need in get_section(name).needs:
            visit(need, (*path, name))
        done.append(name)

    for name in sorted(wanted, key=lambda n: (get_section(n).order, n)):
        visit(name, ())
    return done


def templates_hash() -> str:
    """Short sha256 over the report's templates (the page assembly's rerun trigger: they are no Python, so
    :func:`salbench.sources.source_hash` does not see them)."""
    import hashlib

    digest = hashlib.sha256()
    for path in sorted(p for p in TEMPLATES_DIR.rglob("*") if p.is_file() and "__pycache__" not in p.parts):
        digest.update(path.relative_to(TEMPLATES_DIR).as_posix().encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def report_metric_info(config: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The report's metric info: each configured metric's aggregate, direction and description, and the grid
    metric's (imports torch).

    Built-in metrics come from the registries' snapshot, a plugin metric from its registry entry; the jobs module
    is imported by name so that the sections' source hashes (:mod:`salbench.sources`) do not take in the whole
    package through it (a plugin's scores, which the sections read, change with its code anyway)."""
    import importlib

    from ...grid import GridSettings
    from ...params import canonical_json
    from ...snapshot import load_catalog

    snapshot, info, plugins = load_catalog()["metrics"], {}, {}
    for name, spec in (config.get("metrics") or {}).items():
        entry = snapshot.get(spec["metric"])
        if entry is None:
            plugins[name] = spec
            continue
        info[name] = {key: entry[key] for key in ("aggregate", "higher_is_better", "description")}
        info[name]["params"] = canonical_json(spec.get("params", {}))
    if plugins:
        info.update(importlib.import_module("salbench.jobs").metric_info(plugins))
    return {**info, **GridSettings.from_config(config.get("grid")).metric_info()}


def run_section(name: str, ctx: SectionContext, table: Path | None = None) -> Path:
    """Run section ``name`` into ``ctx.out``: ``aggregate`` writes into a temporary sibling, ``context.json``
    (sorted keys) is added and the folder renamed into place (a killed job leaves no half folder). ``table``
    (``results/tables/{study}/{name}.parquet``) gets a checksummed copy of the main table; a section that wrote
    none gets an empty one (its ``empty`` reason, when it gave one). Returns the folder."""
    from ...store import atomic_path

    section = get_section(name)
    final = Path(ctx.out)
    with atomic_path(final) as tmp:
        tmp.mkdir(parents=True)
        context = section.aggregate(replace(ctx, out=tmp, name=name))
        if not isinstance(context, dict):
            raise TypeError(f"section {name!r}: aggregate returned {type(context).__name__}, not a dict")
        (tmp / CONTEXT_FILE).write_text(context_json(name, context), encoding="utf-8")
    if table is not None:
        _copy_main_table(final, Path(table), context)
    return final


def context_json(name: str, context: dict[str, Any]) -> str:
    """``context`` as JSON text, keys sorted; NaN and infinities become null, numpy scalars plain numbers; any
    other value that is not JSON data is an error naming the section."""

    def default(value: Any) -> Any:
        item = getattr(value, "item", None)  # numpy scalars
        if callable(item) and getattr(value, "shape", None) == ():
            return _finite(item())
        raise TypeError(f"section {name!r}: its context holds a {type(value).__name__} ({value!r:.60}), which is "
                        "not JSON data; return plain lists, dicts, strings and numbers")

    return json.dumps(_finite(context), sort_keys=True, indent=1, default=default, allow_nan=False,
                      ensure_ascii=False) + "\n"


def _finite(value: Any) -> Any:
    """``value`` with every non-finite float replaced by None (recursively through dicts, lists and tuples)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def _copy_main_table(folder: Path, table: Path, context: dict[str, Any]) -> None:
    import pandas as pd

    from ...store import read_table
    from ..tables import write_frame

    source = folder / MAIN_TABLE
    frame = read_table(source) if source.exists() else pd.DataFrame({"empty": [str(context.get("empty", ""))]}
                                                                    if "empty" in context else {})
    write_frame(frame, table)
