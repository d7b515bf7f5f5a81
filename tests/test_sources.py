"""Rule source hashes follow the real import graph: parsed imports against what Python actually imports."""

from __future__ import annotations

import importlib.util
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from salbench import sources
from salbench.sources import imported_files, module_file, module_name, source_closure, source_hash

#: runs in a child: imports the modules named in argv (then calls ``salbench.a.f`` if asked) with
#: ``builtins.__import__`` wrapped, and prints each salbench module's salbench imports as resolved by Python
RECORDER = r'''
import builtins, importlib, importlib.util, json, sys

edges = {}
real_import = builtins.__import__


def recording_import(name, globals=None, locals=None, fromlist=(), level=0):
    module = real_import(name, globals, locals, fromlist, level)
    importer = (globals or {}).get("__name__", "")
    base = importlib.util.resolve_name("." * level + name, globals["__package__"]) if level else name
    if importer.split(".")[0] == "salbench" and base.split(".")[0] == "salbench":
        targets = {f"{base}.{item}" if f"{base}.{item}" in sys.modules else base for item in fromlist or ()}
        edges.setdefault(importer, set()).update(targets or {base})
    return module


builtins.__import__ = recording_import
for name in sys.argv[1:]:
    if name == "call:f":
        sys.modules["salbench.a"].f()
    else:
        importlib.import_module(name)
print(json.dumps({k: sorted(v) for k, v in edges.items()}))
'''

#: a package named salbench: every import form, an import in a function, one under TYPE_CHECKING, and files
#: that no import names (a sibling submodule, the top package, an unrelated module)
TOY = {
    "__init__.py": "",
    "a.py": ("from typing import TYPE_CHECKING\nimport os\nfrom . import b\nfrom .pkg import sub as s\n"
             "import salbench.c\n\nif TYPE_CHECKING:\n    from . import typeonly\n\n\n"
             "def f():\n    from salbench.lazy import thing\n    return thing\n"),
    "b.py": "from .pkg import helper\n",
    "c.py": "import json\n",
    "lazy.py": "from .d import thing\n",
    "d.py": "thing = 1\n",
    "e.py": "",
    "typeonly.py": "",
    "unrelated.py": "from . import e\n",
    "pkg/__init__.py": "helper = 2\n",
    "pkg/sub.py": "from .. import (\n    e,  # a comment (with parentheses)\n)\n",
    "pkg/other.py": "",
}


def _toy(root: Path) -> Path:
    """``root/salbench``: the :data:`TOY` package with a copy of :mod:`salbench.sources`."""
    package = root / "salbench"
    for rel, text in TOY.items():
        (package / rel).parent.mkdir(parents=True, exist_ok=True)
        (package / rel).write_text(text)
    (package / "sources.py").write_bytes(Path(sources.__file__).read_bytes())
    return package


def _load_sources(package: Path):
    """A fresh copy of :mod:`salbench.sources` reading ``package`` (its own caches)."""
    spec = importlib.util.spec_from_file_location(f"toy_sources_{id(package)}", package / "sources.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _recorded(pythonpath: Path | None, *names: str) -> dict[str, set[str]]:
    env = {"PYTHONPATH": str(pythonpath)} if pythonpath else None
    result = subprocess.run([sys.executable, "-c", RECORDER, *names], capture_output=True, text=True, env=env,
                            timeout=300, cwd=pythonpath)
    assert result.returncode == 0, result.stderr[-3000:]
    return {k: set(v) for k, v in json.loads(result.stdout.splitlines()[-1]).items()}


def test_toy_package_closure_is_exactly_what_python_imports(tmp_path):
    package = _toy(tmp_path)
    toy = _load_sources(package)
    assert toy.SRC_DIR == package
    assert toy.source_closure("a.py") == {"a.py", "b.py", "c.py", "pkg/__init__.py", "pkg/sub.py", "e.py",
                                          "lazy.py", "d.py"}
    # what Python imports, module by module, once f() has run its function-level import as well
    recorded = _recorded(tmp_path, "salbench.a", "salbench.unrelated", "call:f")
    files = {toy.module_file(importer): {toy.module_file(t) for t in targets} for importer, targets in recorded.items()}
    assert files["a.py"] == {"b.py", "c.py", "pkg/sub.py", "lazy.py"}  # TYPE_CHECKING: neither run nor hashed
    assert files.keys() == {"a.py", "b.py", "lazy.py", "pkg/sub.py", "unrelated.py"}
    for rel, targets in files.items():
        assert targets == toy.imported_files(rel), rel


def test_toy_package_hash_changes_with_the_closure_only(tmp_path):
    package = _toy(tmp_path)
    before = _load_sources(package).source_hash(["a.py"])
    for rel in ("unrelated.py", "typeonly.py", "pkg/other.py", "__init__.py"):
        (package / rel).write_text("# an edit\n")
    assert _load_sources(package).source_hash(["a.py"]) == before
    (package / "d.py").write_text("thing = 3\n")  # reached only through the function-level import
    assert _load_sources(package).source_hash(["a.py"]) != before


def _indented_imports(rel: str) -> set[str]:
    """The words of every import statement of ``rel`` that is not at module level (in a function or block)."""
    text = (sources.SRC_DIR / rel).read_text()
    statements = re.findall(r"^[ \t]+(?:from\s+\S+\s+)?import\s+(?:\([^)]*\)|[^\n]*)", text, re.MULTILINE)
    return set(re.findall(r"\w+", " ".join(statements)))


@pytest.fixture(scope="module")
def recorded():
    """What Python imports when every module of the real package is imported (module-level imports run)."""
    names = [module_name(p.relative_to(sources.SRC_DIR).as_posix()) for p in sorted(sources.SRC_DIR.rglob("*.py"))]
    return _recorded(None, *[n for n in names if not n.endswith("__main__")])


def test_every_module_imports_no_more_than_parsed_and_the_rest_is_in_functions(recorded):
    """Per module: Python's imports are a subset of the parsed ones; each parsed import Python did not run is an
    import statement inside a function (or block), not an unrelated module."""
    for importer, targets in recorded.items():
        rel = module_file(importer)
        actual = {module_file(t) for t in targets}
        assert actual <= imported_files(rel), (rel, actual - imported_files(rel))
        for extra in imported_files(rel) - actual:
            name = Path(extra).parent.name if extra.endswith("__init__.py") else Path(extra).stem
            assert name in _indented_imports(rel), (rel, extra)


def test_rule_closures_hold_what_their_entries_import(recorded):
    def reachable(rel: str) -> set[str]:
        seen, todo = set(), [module_name(rel)]
        while todo:
            name = todo.pop()
            if name not in seen:
                seen.add(name)
                todo.extend(recorded.get(name, ()))
        return {module_file(n) for n in seen}

    for entry in ("layerwise/run.py", "train.py", "saliency.py", "sanity/run.py", "grid.py",
                  "report/sections/leaderboard.py", "report/assemble.py",
                  "methods/gradient.py", "methods/cam.py", "metrics/faithfulness.py", "shards.py"):
        assert reachable(entry) <= source_closure(entry), entry


def test_absolute_and_function_level_imports_are_followed():
    """The layer-wise job imports salbench.runtime absolutely inside a function: editing runtime.py must rerun it;
    it no longer goes through jobs.py, whose in-function imports reach nearly every module."""
    assert "runtime.py" in imported_files("layerwise/run.py")
    layerwise = source_closure("layerwise/run.py")
    assert "runtime.py" in layerwise and "jobs.py" not in layerwise
    assert "jobs.py" in source_closure("overlays.py") and "runtime.py" in source_closure("jobs.py")
    closure = source_closure("methods/gradient.py")  # not every method through the methods package
    assert {"methods/gradient.py", "methods/base.py", "params.py"} <= closure
    assert not {"methods/cam.py", "methods/__init__.py", "config.py", "jobs.py"} & closure
    # a name under `if TYPE_CHECKING:` is not imported at run time
    assert "methods/base.py" not in imported_files("metrics/base.py")
    assert "TYPE_CHECKING" in (sources.SRC_DIR / "metrics/base.py").read_text()


def test_hashing_every_rule_is_cheap_and_imports_no_torch():
    code = ("import sys, time\nt = time.process_time()\nfrom salbench.config import source_hash\n"
            "from salbench.sources import SRC_DIR\n"
            "files = [p.relative_to(SRC_DIR).as_posix() for p in SRC_DIR.rglob('*.py')]\n"
            "start = time.process_time()\nfor f in files:\n    source_hash([f])\n"
            "print('torch' in sys.modules, time.process_time() - start)\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    torch_imported, seconds = result.stdout.split()
    assert torch_imported == "False"
    assert float(seconds) < 3.0  # CPU seconds for every module of the package (about 0.3 s here)
