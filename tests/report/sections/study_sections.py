"""The synthetic study's section folders, as the workflow's section rules would write them: the inputs of
:mod:`tests.report.synthetic` plus sanity tables, run section by section (each after the folders it needs)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from salbench.report.assemble import run_sections
from salbench.store import write_table

from ..conftest import REGISTERED_METRICS, section_inputs
from ..synthetic import MODELS, make_study

#: how far each method's maps stay similar to the original as the first model is randomised: gradient and gradcam
#: change (pass), the edge-detector control does not (it must fail), the random control changes by construction
LAST_SIMILARITY = {"gradient": 0.1, "gradcam": 0.2, "random": 0.0, "edges": 1.0}
#: the sections the findings, the cards, the curves and the method pages read
SECTIONS = ("overview", "leaderboard", "ranks", "sanity", "claims", "curves", "cards", "findings")


def sanity_tables(root: Path) -> list[Path]:
    """Top-down cascade tables of the synthetic methods on the first model (six items, three stages)."""
    paths = []
    for method, last in LAST_SIMILARITY.items():
        rows = [{"dataset": "shapes", "model": MODELS[0], "method": method, "check": "model_sensitivity",
                 "statistic": "spearman_abs", "stage": "original" if k == 0 else f"block{k}", "stage_index": k,
                 "item": f"img{i:02d}", "value": 1 + (last - 1) * k / 3 + 0.01 * (i % 2)}
                for k in range(4) for i in range(6)]
        paths.append(write_table(pd.DataFrame(rows), root / "shapes" / MODELS[0] / "sanity" / f"{method}.parquet"))
    return paths


def study_sections(root: Path, names: tuple[str, ...] = SECTIONS) -> tuple[dict[str, Any], dict[str, Path]]:
    """The synthetic study's config and its section folders (``names`` and those they need) under ``root``, each
    section run with only its input groups and config keys, as the workflow runs it."""
    kwargs = make_study(root / "study").kwargs
    config = {**kwargs["config"], "metrics": REGISTERED_METRICS,
              "sanity": {"measure": "spearman_abs", "thresholds": {}}}
    inputs = {**section_inputs(kwargs), "sanity": sanity_tables(root / "study")}
    return config, run_sections("synthetic", config, inputs, root / "sections", root / "tables", names=list(names))


def empty_sections(root: Path, names: tuple[str, ...]) -> dict[str, Path]:
    """Folders of sections ``names`` that had nothing to show (their context holds only ``empty``)."""
    folders = {}
    for name in names:
        folders[name] = root / name
        folders[name].mkdir(parents=True)
        (folders[name] / "context.json").write_text('{"empty": "nothing to show"}')
    return folders


_SHARED: dict[str, tuple[dict[str, Any], dict[str, Path]]] = {}


def shared_sections(tmp_path_factory) -> tuple[dict[str, Any], dict[str, Path]]:
    """:func:`study_sections` built once per test session (read them, never write into them)."""
    if "all" not in _SHARED:
        _SHARED["all"] = study_sections(tmp_path_factory.mktemp("study-sections"))
    return _SHARED["all"]
