"""The source files of ``salbench`` that a workflow rule's jobs run, from the package's real import graph.

Snakemake reruns a job when its shell command or params change, not when a Python module it imports
does; so each rule carries :func:`source_hash` of its entry modules as a param (``workflow/rules``).
The hash covers an entry's import closure: every ``salbench`` module it imports, relative or absolute,
at module level or inside a function (``from . import x`` names the submodule ``x``), transitively.
Modules are parsed with :mod:`ast`, never imported: the Snakefile computes these hashes on every DAG
build and must not import torch. Parsed imports and closures are cached for the process.

A plugin (a method, metric, check or model of the user's own package, :mod:`salbench.plugins`) enters a
rule's entry files as ``plugin:<module>``: its hash covers the files of that module's own top-level package
that it imports, found the same way (without importing them), and the package's installed version.

Two imports are left out on purpose. A module's parent packages (``methods/__init__.py`` for
``methods/gradient.py``) run before it but are not its dependencies: following them would tie every
method to every other through the registry package. And ``if TYPE_CHECKING:`` imports never run.
"""

from __future__ import annotations

import ast
import hashlib
import importlib.machinery
import importlib.metadata
import importlib.util
from functools import lru_cache
from pathlib import Path
from typing import Iterable, Iterator

SRC_DIR = Path(__file__).resolve().parent
PACKAGE = SRC_DIR.name


#: the entry-file prefix naming a plugin module (``plugin:my_package.attribution``)
PLUGIN_PREFIX = "plugin:"


def module_name(rel: str, root: Path = SRC_DIR) -> str:
    """The dotted name of a package file: ``methods/gradient.py`` -> ``salbench.methods.gradient``."""
    parts = [root.name, *Path(rel).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def module_file(name: str, root: Path = SRC_DIR) -> str | None:
    """The file of module ``name`` in the package folder ``root`` (relative to it), or None if it is no module there."""
    if name != root.name and not name.startswith(root.name + "."):
        return None
    path = root.joinpath(*name.split(".")[1:])
    for candidate in (path.with_suffix(".py"), path / "__init__.py"):
        if candidate.is_file():
            return candidate.relative_to(root).as_posix()
    return None


#: nodes that hold statements
_BLOCKS = (ast.stmt, ast.excepthandler, ast.match_case)


def _import_nodes(tree: ast.AST) -> Iterator[ast.Import | ast.ImportFrom]:
    """Every import statement of ``tree``, in functions and classes too, except under ``if TYPE_CHECKING:``."""
    todo = [tree]
    while todo:
        node = todo.pop()
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        elif isinstance(node, ast.If) and _is_type_checking(node.test):
            todo.extend(node.orelse)
        else:  # statements only: an import is never inside an expression
            todo.extend(child for child in ast.iter_child_nodes(node) if isinstance(child, _BLOCKS))


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


@lru_cache(maxsize=None)
def imported_files(rel: str, root: Path = SRC_DIR) -> frozenset[str]:
    """The files of package ``root`` that its module at ``rel`` imports directly (what its import statements name)."""
    name = module_name(rel, root)
    package = name if rel == "__init__.py" or rel.endswith("/__init__.py") else name.rpartition(".")[0]
    tree = ast.parse((root / rel).read_bytes(), filename=str(root / rel))
    found: set[str | None] = set()
    for node in _import_nodes(tree):
        if isinstance(node, ast.Import):
            found.update(module_file(alias.name, root) for alias in node.names)
            continue
        base = importlib.util.resolve_name("." * node.level + (node.module or ""), package) if node.level \
            else node.module or ""
        for alias in node.names:  # a submodule of base, or else a name that base defines
            found.add(module_file(f"{base}.{alias.name}", root) or module_file(base, root))
    found.discard(None)
    return frozenset(found)  # type: ignore[arg-type]


@lru_cache(maxsize=None)
def source_closure(rel: str, root: Path = SRC_DIR) -> frozenset[str]:
    """``rel`` and every file of package ``root`` it imports, transitively."""
    seen, todo = set(), [rel]
    while todo:
        current = todo.pop()
        if current not in seen:
            seen.add(current)
            todo.extend(imported_files(current, root) - seen)
    return frozenset(seen)


class PluginSourceError(ImportError):
    """A plugin module cannot be found on ``sys.path``."""


@lru_cache(maxsize=None)
def plugin_location(module: str) -> tuple[Path, str, bool]:
    """``(root, rel, in_package)``: the folder of ``module``'s top-level package (or of the module itself, when it
    is a top-level module), the module's file relative to it, and which of the two; found without importing."""
    top, *rest = module.split(".")
    spec = importlib.machinery.PathFinder.find_spec(top)
    if spec is None or spec.origin in (None, "built-in", "frozen"):
        raise PluginSourceError(f"no module named {top!r} on the Python path")
    if not spec.submodule_search_locations:  # a top-level module file: the closure is the file itself
        if rest:
            raise PluginSourceError(f"{top!r} is a module, not a package, so it has no submodule {module!r}")
        path = Path(spec.origin).resolve()
        return path.parent, path.name, False
    root = Path(next(iter(spec.submodule_search_locations))).resolve()
    rel = module_file(module, root)
    if rel is None:
        raise PluginSourceError(f"no module named {module!r} in package {top!r} ({root})")
    return root, rel, True


@lru_cache(maxsize=None)
def plugin_version(module: str) -> str:
    """``name==version`` of the installed distribution providing ``module``'s top-level package ("" if none)."""
    dists = importlib.metadata.packages_distributions().get(module.split(".")[0], [])
    return ",".join(sorted(f"{d}=={importlib.metadata.version(d)}" for d in set(dists)))


def plugin_files(module: str) -> tuple[Path, frozenset[str]]:
    """The package folder of plugin ``module`` and its files the module depends on (its import closure
    within its own top-level package; a top-level module file alone)."""
    root, rel, in_package = plugin_location(module)
    return root, source_closure(rel, root) if in_package else frozenset({rel})


def source_hash(entry_files: Iterable[str]) -> str:
    """Short sha256 over the package files that ``entry_files`` (paths relative to the package) depend on.

    A rule's param: editing a method's module (or anything it imports) reruns that method's jobs and
    nothing else.
    """
    return _closure_hash(frozenset(entry_files))


@lru_cache(maxsize=None)
def _closure_hash(entry_files: frozenset[str]) -> str:
    digest = hashlib.sha256()
    own = {f for f in entry_files if not f.startswith(PLUGIN_PREFIX)}
    if own != entry_files:  # a plugin entry depends on the loader that checks and registers it as well
        own.add("plugins.py")
    for rel in sorted(frozenset().union(*(source_closure(f) for f in own))):
        digest.update(rel.encode())
        digest.update((SRC_DIR / rel).read_bytes())
    for entry in sorted(entry_files - own):
        digest.update(f"{entry}@{plugin_hash(entry.removeprefix(PLUGIN_PREFIX))}".encode())
    return digest.hexdigest()[:16]


@lru_cache(maxsize=None)
def plugin_hash(module: str) -> str:
    """Short sha256 over plugin ``module``'s files (:func:`plugin_files`) and its installed version."""
    root, files = plugin_files(module)
    digest = hashlib.sha256(plugin_version(module).encode())
    for rel in sorted(files):
        digest.update(rel.encode())
        digest.update((root / rel).read_bytes())
    return digest.hexdigest()[:16]
