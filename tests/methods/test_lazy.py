"""Heavy libraries load only in the code paths that use them (:mod:`salbench.methods.lazy`)."""

from __future__ import annotations

import builtins
import json
import subprocess
import sys

import pytest
import torch

from salbench.methods import Method, list_methods
from salbench.methods.lazy import loaded_classes

from .helpers import CHEAP_PARAMS, SPEC, images, make_method, tiny_model

#: libraries only some methods (captum, zennit, timm and torchvision) or no job (matplotlib, scipy) need
HEAVY = ("captum", "zennit", "timm", "torchvision", "matplotlib", "scipy")
#: what the ``saliency``, ``score`` and ``sanity`` subcommands import before computing anything
JOB_MODULES = ("salbench.cli", "salbench.jobs", "salbench.models", "salbench.saliency", "salbench.methods",
               "salbench.metrics", "salbench.sanity.run")


def test_job_imports_load_no_heavy_library():
    code = (f"import json, sys, {', '.join(JOB_MODULES)}\n"
            f"print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in {HEAVY!r})))")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout) == []


def test_loaded_classes_finds_classes_of_imported_modules_only():
    assert loaded_classes("json", "JSONDecoder", "JSONEncoder") == (json.JSONDecoder, json.JSONEncoder)
    assert loaded_classes("salbench.no_such_module", "BasicBlock") == ()
    assert not isinstance(object(), loaded_classes("salbench.no_such_module", "BasicBlock"))


def declared(method: Method) -> set[str]:
    """Top-level names of the libraries declared by ``method`` and by the methods it holds (a wrapper's base)."""
    names = {library.split(".")[0] for library in method.libraries}
    for value in vars(method).values():
        if isinstance(value, Method):
            names |= declared(value)
    return names


@pytest.mark.parametrize("name", list_methods())
def test_method_declares_the_heavy_libraries_it_imports(name, monkeypatch):
    """What ``attribute`` imports is loaded when the method is built, so a job's timed compute holds no import."""
    method = make_method(name, **CHEAP_PARAMS.get(name, {}))
    if method.skip_reason(SPEC):
        pytest.skip(method.skip_reason(SPEC))
    imported = set()
    real_import = builtins.__import__

    def spy(module, globals=None, locals=None, fromlist=(), level=0):
        if level == 0 and module.split(".")[0] in HEAVY:
            imported.add(module.split(".")[0])
        return real_import(module, globals, locals, fromlist, level)

    monkeypatch.setattr(builtins, "__import__", spy)
    method.attribute(tiny_model(), images(2), torch.tensor([0, 1]))
    monkeypatch.undo()
    assert imported <= declared(method)
