"""What several report sections read the same way: the study's methods and controls, bootstrap settings, method
families, and template contexts made JSON-safe (a section's ``context.json``).

Torch-free and matplotlib-free, so the section declarations that import it stay cheap.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Iterable

import numpy as np
import pandas as pd

#: method family of each catalog module (``methods/<module>.py``), in the order the report groups them
MODULE_FAMILIES = {
    "gradient": "gradients", "path": "gradients", "deeplift": "gradients", "noise": "gradients",
    "cam": "CAM", "cam_family": "CAM",
    "backprop": "modified backpropagation", "lrp": "relevance propagation", "rsp": "relevance propagation",
    "perturbation": "perturbation", "extremal": "perturbation", "meaningful": "perturbation", "mdm": "perturbation",
    "coda": "self-explaining models",
    "controls": "controls",
}
FAMILY_ORDER = ("gradients", "CAM", "modified backpropagation", "relevance propagation", "perturbation",
                "self-explaining models", "other", "controls")
OTHER_FAMILY = "other"
#: bootstrap resamples when the config's ``report.bootstrap`` does not say
DEFAULT_BOOTSTRAP = 1000


def bootstrap_settings(config: dict[str, Any]) -> tuple[int, int]:
    """``(n_boot, seed)``: config keys ``report.bootstrap`` and ``seed``."""
    return int((config.get("report") or {}).get("bootstrap", DEFAULT_BOOTSTRAP)), int(config.get("seed", 0))


def study_methods(config: dict[str, Any], present: Iterable[str] = ()) -> tuple[list[str], set[str]]:
    """The study's method ids (config ``methods`` and any others ``present`` in its tables) in the report's
    order, controls last, and the set of control ids."""
    from .tables import control_methods, method_order

    methods = set(config.get("methods") or {}) | {str(m) for m in present}
    controls = control_methods(config, methods)
    return method_order(methods, controls), controls


def registered_name(method: str, config: dict[str, Any]) -> str:
    """The registered method a config method id runs (the id itself when the config does not say)."""
    return str(((config.get("methods") or {}).get(method) or {}).get("method", method))


def method_family(registered: str, catalog: dict[str, Any]) -> str:
    """The family of a registered method, from its module in the catalog (a library variant ``base@library``
    belongs to its base's family; a method of an unknown module to :data:`OTHER_FAMILY`)."""
    entry = (catalog.get("methods") or {}).get(registered.partition("@")[0]) or {}
    module = Path(str(entry.get("module", ""))).stem
    return MODULE_FAMILIES.get(module, OTHER_FAMILY)


def families_of(methods: list[str], config: dict[str, Any], catalog: dict[str, Any]) -> list[tuple[str, list[str]]]:
    """``(family, its methods in the given order)`` in :data:`FAMILY_ORDER`, families without methods left out."""
    groups: dict[str, list[str]] = {}
    for method in methods:
        groups.setdefault(method_family(registered_name(method, config), catalog), []).append(method)
    return [(family, groups[family]) for family in FAMILY_ORDER if family in groups]


def jsonable(value: Any) -> Any:
    """``value`` with numpy scalars as Python numbers, NaN/NA as None, tuples as lists (recursively)."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def records(frame: pd.DataFrame, columns: Iterable[str] | None = None) -> list[dict[str, Any]]:
    """The rows of ``frame`` (its ``columns``, default all) as JSON-safe dicts."""
    part = frame if columns is None else frame[[c for c in columns if c in frame.columns]]
    return [jsonable(row) for row in part.to_dict(orient="records")]
