"""The check registry: every check is one entry that the job, the verdicts, the report, the workflow and
``salbench list checks`` read; adding a check is one declaration."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from salbench.config import load_catalog, load_schema
from salbench.registry import Entry, UnknownNameError
from salbench.report import sanity as report_sanity
from salbench.sanity import verdicts as verdicts_module
from salbench.sanity.checks import CHECKS, Check, controls, get_check, list_checks, register_check
from salbench.sanity.checks.base import describe_checks
from salbench.sanity.run import COLUMNS, CheckJob, SanitySettings, applicable, run_checks

ROOT = Path(__file__).resolve().parents[2]


def test_every_check_declares_its_rule_citation_and_scope():
    assert {"model_sensitivity", "top_layer_sensitivity", "bottom_layer_sensitivity", "class_sensitivity"} <= set(
        list_checks())
    for name in list_checks():
        check = get_check(name)
        assert check.name == name and check.description and check.citation and check.rule
        assert check.passes_when in ("below", "above") and check.higher_is_better == (check.passes_when == "above")
        assert callable(check.compute)
    assert list_checks(applies_to="two_object") == ["class_sensitivity", "random_logit"]
    with pytest.raises(UnknownNameError, match="allowed: bottom_layer_sensitivity"):
        get_check("model_sensitivty")
    with pytest.raises(ValueError, match="already registered"):
        register_check(get_check("random_logit"))
    with pytest.raises(ValueError, match="passes_when"):
        Check("x", "d", "c", len, "s", "r", "sideways", 0.5)


def test_verdicts_report_and_controls_are_views_of_the_registry():
    assert set(verdicts_module.RULES) == set(report_sanity.CHECK_MEANINGS) == set(list_checks())
    assert verdicts_module.CONTROLS == controls()
    assert set(controls()["sobel"]) == {"model_sensitivity", "top_layer_sensitivity", "bottom_layer_sensitivity",
                                        "emprt", "smprt"}
    assert list(report_sanity.CHECK_MEANINGS)[:3] == ["model_sensitivity", "top_layer_sensitivity",
                                                      "bottom_layer_sensitivity"]


def test_catalog_and_config_schema_list_the_registered_checks():
    catalog = load_catalog()["checks"]
    assert catalog == {name: {"module": catalog[name]["module"], **get_check(name).summary()} for name in list_checks()}
    thresholds = load_schema()["properties"]["sanity"]["properties"]["thresholds"]["propertyNames"]["enum"]
    assert thresholds == list_checks()


def test_salbench_list_checks_prints_every_check_with_its_citation():
    run = subprocess.run([sys.executable, "-m", "salbench", "list", "checks"], capture_output=True, text=True,
                         timeout=120, check=True)
    lines = run.stdout.splitlines()
    assert [line.split()[0] for line in lines] == list_checks()
    for (name, text), line in zip(describe_checks(), lines):
        assert get_check(name).citation in text and line.rstrip().endswith(text)


def code_strings(path: Path) -> set[str]:
    """The string literals of a Python file's code (docstrings, with their examples, left out)."""
    tree = ast.parse(path.read_text())
    docstrings = {id(node.body[0].value) for node in ast.walk(tree)
                  if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
                  and node.body and isinstance(node.body[0], ast.Expr) and isinstance(node.body[0].value, ast.Constant)}
    return {node.value for node in ast.walk(tree)
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings}


def test_no_check_name_is_a_string_literal_outside_its_own_module():
    """The job, verdicts, report and workflow read the registry; only a check's declaration names it. (The
    ``sanity.data_randomisation`` config section, the permuted-label model's training settings, is a config key.)"""
    declared = {name: Path(sys.modules[get_check(name).compute.__module__].__file__).resolve()
                for name in list_checks()}
    found = []
    for path in (ROOT / "src" / "salbench").rglob("*.py"):
        strings = code_strings(path)
        found += [f"{path.relative_to(ROOT)}: {name}" for name, home in declared.items()
                  if path.resolve() != home and name in strings]
    for path in [*(ROOT / "workflow").rglob("*.smk"), ROOT / "Snakefile"]:
        text = path.read_text().replace('["sanity"]["data_randomisation"]', "")
        found += [f"{path.relative_to(ROOT)}: {name}" for name in declared if re.search(rf"""["']{name}["']""", text)]
    assert not found


def test_checks_apply_by_objects_per_image_and_model_capabilities():
    single = {check.name for check in applicable(1)}
    assert "model_sensitivity" in single and "class_sensitivity" not in single
    assert {check.name for check in applicable(2)} == {"class_sensitivity", "random_logit"}
    without = {check.name for check in applicable(1, {"parameter_randomisation": "no reset_parameters()"})}
    assert without == single - {"model_sensitivity", "top_layer_sensitivity", "bottom_layer_sensitivity", "emprt",
                                "smprt"}


def test_adding_a_check_is_one_declaration(monkeypatch):
    """A new check registered with its compute function is run by the job, read by the verdicts and shown."""

    def compute(job: CheckJob) -> list[pd.DataFrame]:
        brightness = job.original().flatten(1).mean(1)
        return [job.rows("toy_check", "mean_map", brightness)]

    toy = Check("toy_check", "toy: the mean map value is low", "Nobody 2026", compute, "mean_map",
                "mean of the map", "below", 0.5)
    monkeypatch.setitem(CHECKS._entries, "toy_check", Entry("toy_check", toy, toy.description))
    from salbench.methods import create_method

    from .helpers import images, linear_model

    job = CheckJob(create_method("centre"), linear_model(), images(3), torch.arange(3) % 2, ["a", "b", "c"],
                   SanitySettings(items=3), 0, 3, "cpu")
    table = run_checks(job, [toy])
    assert list(table.columns) == COLUMNS and set(table["check"]) == {"toy_check"}
    values = verdicts_module.verdict_values(table, "spearman_abs")
    assert set(values) == {"toy_check"}
    (result,) = verdicts_module.verdicts({("centre", "toy_check"): values["toy_check"]}, n_boot=100)
    assert result.passed is bool(np.mean(values["toy_check"]) < 0.5)
    assert verdicts_module.check_rules({"toy_check": 0.1})["toy_check"].threshold == 0.1
