"""The check contract and registry: one entry per sanity check, read by the job, the verdicts and the report.

A :class:`Check` declares everything about a check except its arithmetic: the per-item statistic its verdict
reads and where it sits in the sanity table, the verdict rule and default threshold, the controls that must
fail it, what it applies to (single-object data sets get the model-level checks, two-object ones the class
checks; a model capability it needs), its one-line meaning and citation. Its ``compute`` function writes
table rows; checks sharing one (the randomisation cascade's family) share one computation per job, which
runs it once. This module and the declarations are torch-free (the report reads them): a ``compute`` function
imports its torch implementation when it runs. Adding a check is one declaration module plus its test.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable

import pandas as pd

from ...registry import Registry

if TYPE_CHECKING:
    from ..run import CheckJob

#: what a check's verdict needs of the per-item statistic: its mean ``below`` or ``above`` the threshold
PASSES_WHEN: tuple[str, ...] = ("below", "above")
#: which data sets a check applies to, by objects per image: model-level checks need single-object items,
#: class checks the two items (one per class) of a two-object image
OBJECTS: dict[str, int] = {"single_object": 1, "two_object": 2}
#: which rows of a cascade a verdict reads: every row (not a cascade), the last stage (fully randomised)
#: or the stage after ``sanity.top_fraction`` of the stages
STAGES: tuple[str, ...] = ("", "last", "fraction")
#: what a check tests a method's sensitivity to (a saliency card's attribute; Boggust et al., FAccT 2023)
SENSITIVITIES: tuple[str, ...] = ("input", "label", "model")
#: ``statistic`` value meaning "the configured similarity measure" (``sanity.measure``)
MEASURE = "measure"

Compute = Callable[["CheckJob"], list[pd.DataFrame]]


@dataclass(frozen=True)
class Check:
    """One sanity check (see the module docstring).

    ``rows``: the sanity table's ``check`` value the verdict reads (default: the check's own name; a cascade
    family writes one group of rows per cascade). ``statistic``: the table statistic, or :data:`MEASURE`.
    ``rule``: what the per-item statistic is, in words. ``controls``: control methods (model- or
    input-independent maps) that must fail the check; one that passes makes the check untrustworthy.
    ``requires``: model capabilities (keys of a model spec's ``lacks``) the check needs. ``sensitivity``: what the
    check tests the maps' sensitivity to (one of :data:`SENSITIVITIES`; a saliency card's attribute), or "".
    """

    name: str
    description: str
    citation: str
    compute: Compute
    statistic: str
    rule: str
    passes_when: str
    threshold: float
    applies_to: str = "single_object"
    rows: str = ""
    stage: str = ""
    controls: tuple[str, ...] = ()
    requires: tuple[str, ...] = ()
    sensitivity: str = ""

    def __post_init__(self) -> None:
        for field, value, allowed in (("passes_when", self.passes_when, PASSES_WHEN),
                                      ("sensitivity", self.sensitivity, ("", *SENSITIVITIES)),
                                      ("applies_to", self.applies_to, tuple(OBJECTS)), ("stage", self.stage, STAGES)):
            if value not in allowed:
                raise ValueError(f"check {self.name!r}: {field} {value!r} is not one of {', '.join(allowed)}")
        if not self.rows:
            object.__setattr__(self, "rows", self.name)

    @property
    def higher_is_better(self) -> bool:
        """The check's favourable direction: larger statistics pass (``above``) or smaller ones (``below``)."""
        return self.passes_when == "above"

    @property
    def objects(self) -> int:
        """Objects per image of the data sets the check applies to."""
        return OBJECTS[self.applies_to]

    def passes(self, value: float, threshold: float | None = None) -> bool:
        """Whether a mean ``value`` passes at ``threshold`` (default: the check's own)."""
        limit = self.threshold if threshold is None else threshold
        return bool(value < limit) if self.passes_when == "below" else bool(value > limit)

    def summary(self) -> dict[str, Any]:
        """The declaration as plain data (the catalog snapshot; the compute function by module)."""
        return {"description": self.description, "citation": self.citation, "statistic": self.statistic,
                "rule": self.rule, "passes_when": self.passes_when, "threshold": self.threshold,
                "higher_is_better": self.higher_is_better, "applies_to": self.applies_to, "objects": self.objects,
                "rows": self.rows, "stage": self.stage, "controls": list(self.controls),
                "requires": list(self.requires), "compute": f"{self.compute.__module__}:{self.compute.__qualname__}"}


CHECKS: Registry[Check] = Registry("check")


def register_check(check: Check) -> Check:
    """Register ``check`` under its name (a duplicate name is an error)."""
    return CHECKS.register(check.name, check.description)(check)


def get_check(name: str) -> Check:
    """The check registered as ``name``; an unknown name lists the allowed ones."""
    return CHECKS.get(name)


def list_checks(filter: str = "*", applies_to: str | None = None) -> list[str]:
    """Registered check names matching the fnmatch ``filter`` (and data-set kind ``applies_to``), sorted."""
    return [name for name in CHECKS.names(filter) if applies_to in (None, CHECKS.get(name).applies_to)]


def describe_checks() -> list[tuple[str, str]]:
    """``(name, description; citation)`` for ``salbench list checks``; a plugin's is marked with its package."""
    return [(name, f"{text} [{CHECKS.get(name).citation}]") for name, text in CHECKS.describe()]


def controls() -> dict[str, tuple[str, ...]]:
    """Control method -> the checks it must fail, from every check's ``controls``."""
    out: dict[str, list[str]] = {}
    for entry in CHECKS.entries():
        for control in entry.obj.controls:
            out.setdefault(control, []).append(entry.name)
    return {control: tuple(names) for control, names in out.items()}
