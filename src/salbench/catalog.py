"""Snapshot of the registries for cheap config validation and DAG building.

The Snakefile must not import torch (every cluster job re-parses it), so names, parameter defaults
and capability flags of every registered entry are written to ``schemas/catalog.json`` by
``salbench catalog --write``; a test fails when the snapshot and the live registries differ.
"""

from __future__ import annotations

import inspect
import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

from .config import CATALOG_PATH, SRC_DIR


def _module_file(obj: Any) -> str:
    return Path(inspect.getfile(obj)).resolve().relative_to(SRC_DIR).as_posix()


def build_catalog() -> dict[str, dict[str, dict[str, Any]]]:
    """The live registries as plain JSON-able data."""
    from .data import DATASETS
    from .methods import METHODS
    from .metrics import METRICS
    from .models import ARCHS

    methods = {
        e.name: {"module": _module_file(e.obj), "description": e.description, "params": e.obj.defaults,
                 "needs_layer": e.obj.needs_layer, "needs_gap_fc": e.obj.needs_gap_fc,
                 "model_family": e.obj.model_family, "requires": list(e.obj.capabilities()), "uses_model": e.obj.uses_model, "citation": e.obj.citation}
        for e in METHODS.entries()
    }
    metrics = {
        e.name: {"module": _module_file(e.obj), "description": e.description, "params": e.obj.defaults,
                 "needs_model": e.obj.needs_model, "needs_mask": e.obj.needs_mask, "aggregate": e.obj.aggregate,
                 "higher_is_better": e.obj.higher_is_better, "citation": e.obj.citation}
        for e in METRICS.entries()
    }
    datasets = {
        e.name: {"module": _module_file(e.obj), "description": e.description, "params": e.obj.defaults,
                 "classes": list(e.obj.classes), "objects": e.obj.objects}
        for e in DATASETS.entries()
    }
    archs = {
        e.name: {"module": _module_file(e.obj.build), "description": e.description, "spec": asdict(e.obj.spec)}
        for e in ARCHS.entries()
    }
    return json.loads(json.dumps({"datasets": datasets, "archs": archs, "methods": methods, "metrics": metrics}))


def render_catalog() -> str:
    return json.dumps(build_catalog(), indent=1, sort_keys=True) + "\n"


def write_catalog(path: Path = CATALOG_PATH) -> Path:
    path.write_text(render_catalog())
    return path
