"""Pass/fail verdicts per (method, check), with bootstrap intervals, validated by the controls.

Each check reduces to a per-item statistic (see :data:`RULES`); the verdict compares its mean over
items with a threshold and reports a percentile-bootstrap confidence interval of that mean (Efron &
Tibshirani, *An Introduction to the Bootstrap*, 1993). Model-independent controls validate the checks
(Hooker et al., NeurIPS 2019, use Sobel edges and random maps as such controls; Adebayo et al.,
NeurIPS 2018, show that an edge detector's map is unaffected by model randomisation): the Sobel control
must fail model sensitivity and the centre prior must fail input sensitivity. When a control passes a
check it must fail, the check cannot tell explanations from model-independent maps, so every verdict
of that check is marked not trustworthy (Binder et al., CVPR 2023, show how uninformative maps can
score well in randomisation checks).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace
from typing import Any, Mapping

import numpy as np
import pandas as pd

from ..params import ParamError, resolve_params

PASSES_WHEN: tuple[str, ...] = ("below", "above")


@dataclass(frozen=True)
class Rule:
    """How a check's per-item ``statistic`` becomes a verdict: pass when its mean is ``passes_when`` ``threshold``."""

    statistic: str
    passes_when: str
    threshold: float

    def passes(self, value: float) -> bool:
        return bool(value < self.threshold) if self.passes_when == "below" else bool(value > self.threshold)


#: default rules; thresholds are overridable per check
RULES: dict[str, Rule] = {
    "model_sensitivity": Rule("similarity of the fully randomised (last cascading stage) map to the original", "below",
                              0.5),
    "top_layer_sensitivity": Rule("similarity of the map after randomising the top part of the cascade (from the "
                                  "logits down, ``top_fraction`` of its stages) to the original", "below", 0.5),
    "data_randomisation": Rule("similarity of the random-label model's map to the trained model's", "below", 0.5),
    "input_invariance": Rule("relative L1 difference of the maps of the mean-shifted and original models", "below",
                             0.05),
    "input_sensitivity": Rule("within-image minus cross-image map similarity", "above", 0.1),
    "class_sensitivity": Rule("similarity of the maps for an image's two classes", "below", 0.5),
    "random_logit": Rule("similarity of the maps for the target and a random other class", "below", 0.5),
}

#: check -> the statistic of a sanity table (:mod:`.run`) its verdict reads ("measure" = the configured
#: similarity measure; model sensitivity reads it at the last cascading stage, the fully randomised model,
#: top-layer sensitivity part-way down the cascade: Adebayo et al. (2018) find guided backprop unchanged while
#: only the top layers are randomised, a failure the fully randomised verdict cannot show)
VERDICT_STATISTIC: dict[str, str] = {
    "model_sensitivity": "measure",
    "top_layer_sensitivity": "measure",
    "data_randomisation": "measure",
    "input_invariance": "relative_l1",
    "input_sensitivity": "gap",
    "class_sensitivity": "similarity",
    "random_logit": "measure",
}

#: control method -> the checks it must fail
CONTROLS: dict[str, tuple[str, ...]] = {"sobel": ("model_sensitivity", "top_layer_sensitivity"),
                                        "centre": ("input_sensitivity",)}


def check_rules(thresholds: Mapping[str, float] | None = None) -> dict[str, Rule]:
    """:data:`RULES` with ``thresholds`` (check -> number) overriding the defaults; unknown checks are an error."""
    defaults = {check: rule.threshold for check, rule in RULES.items()}
    given = resolve_params("check", "verdicts", defaults, thresholds or {})
    for check, value in given.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ParamError(f"check {check!r}: threshold must be a number, got {value!r}")
    return {check: replace(rule, threshold=float(given[check])) for check, rule in RULES.items()}


def bootstrap_interval(
    values: Any, n_boot: int = 2000, level: float = 0.95, seed: int = 0
) -> tuple[float, float, float]:
    """``(mean, low, high)``: the mean of the finite ``values`` and its percentile-bootstrap ``level`` interval.

    ``n_boot`` resamples of the items with replacement from ``numpy.random.default_rng(seed)``; all NaN
    when no value is finite.
    """
    data = np.asarray(values, dtype=np.float64).ravel()
    data = data[np.isfinite(data)]
    if data.size == 0:
        return (np.nan, np.nan, np.nan)
    means = data[np.random.default_rng(seed).integers(0, data.size, (n_boot, data.size))].mean(axis=1)
    low, high = np.quantile(means, [(1 - level) / 2, (1 + level) / 2])
    return float(data.mean()), float(low), float(high)


@dataclass(frozen=True)
class Verdict:
    """One (method, check) verdict.

    ``decisive``: the interval lies entirely on one side of the threshold. ``trustworthy``: True when the
    check's controls fail it as they must, False when one passes, None when no control validates it.
    """

    method: str
    check: str
    statistic: str
    passes_when: str
    threshold: float
    value: float
    ci_low: float
    ci_high: float
    n_items: int
    passed: bool
    decisive: bool
    trustworthy: bool | None = None
    note: str = ""

    def as_row(self) -> dict[str, Any]:
        """A flat dict for a tidy table."""
        return asdict(self)


def verdict(method: str, check: str, values: Any, rule: Rule, n_boot: int = 2000, level: float = 0.95,
            seed: int = 0) -> Verdict:
    """The verdict of ``rule`` on per-item ``values`` (trust not yet assessed)."""
    mean, low, high = bootstrap_interval(values, n_boot, level, seed)
    n_items = int(np.isfinite(np.asarray(values, dtype=np.float64)).sum())
    decisive = n_items > 0 and rule.passes(low) == rule.passes(high) == rule.passes(mean)
    return Verdict(method, check, rule.statistic, rule.passes_when, rule.threshold, mean, low, high, n_items,
                   passed=n_items > 0 and rule.passes(mean), decisive=decisive,
                   note="" if n_items else "no finite per-item values")


def _trust(
    check: str, results: Mapping[tuple[str, str], Verdict], controls: Mapping[str, tuple[str, ...]]
) -> tuple[bool | None, str]:
    """Whether ``check`` is validated by its controls, and why."""
    expected = [control for control, failed_checks in controls.items() if check in failed_checks]
    if not expected:
        return None, "no control validates this check"
    missing = [control for control in expected if (control, check) not in results]
    passing = [control for control in expected if control not in missing and results[(control, check)].passed]
    if passing:
        return False, f"control {', '.join(passing)} passes this check but must fail it: check not trustworthy"
    if missing:
        return None, f"control {', '.join(missing)} not evaluated"
    return True, f"control {', '.join(expected)} fails this check as it must"


def verdicts(
    stats: Mapping[tuple[str, str], Any],
    thresholds: Mapping[str, float] | None = None,
    controls: Mapping[str, tuple[str, ...]] = CONTROLS,
    n_boot: int = 2000,
    level: float = 0.95,
    seed: int = 0,
) -> list[Verdict]:
    """Verdicts for per-item statistics ``stats[(method, check)]``, each marked by its check's control validation."""
    rules = check_rules(thresholds)
    unknown = sorted({check for _, check in stats} - set(rules))
    if unknown:
        raise ParamError(f"unknown check {unknown[0]!r}; allowed: {', '.join(rules)}")
    results = {key: verdict(*key, values, rules[key[1]], n_boot, level, seed) for key, values in stats.items()}
    trust = {check: _trust(check, results, controls) for check in {check for _, check in results}}
    judged = []
    for result in results.values():
        trusted, why = trust[result.check]
        judged.append(replace(result, trustworthy=trusted, note="; ".join(filter(None, [result.note, why]))))
    return judged


def verdict_values(table: pd.DataFrame, measure: str, top_fraction: float = 0.5) -> dict[str, np.ndarray]:
    """Per check, the per-item values its verdict reads (:data:`VERDICT_STATISTIC`) from one method's sanity table.

    Top-layer sensitivity reads the cascade after ``ceil(top_fraction * stages)`` of its randomisation stages.
    """
    out = {}
    for check, statistic in VERDICT_STATISTIC.items():
        wanted = measure if statistic == "measure" else statistic
        source = "model_sensitivity" if check == "top_layer_sensitivity" else check
        part = table[(table["check"] == source) & (table["statistic"] == wanted)]
        if part.empty:
            continue
        if check == "model_sensitivity":
            out[check] = cascade_stage(part, int(part["stage_index"].max()))
        elif check == "top_layer_sensitivity":
            out[check] = cascade_stage(part, math.ceil(top_fraction * int(part["stage_index"].max())))
        else:
            out[check] = part["value"].to_numpy(dtype=np.float64)
    return out


def cascade_stage(part: pd.DataFrame, stage_index: int) -> np.ndarray:
    """Per item, the similarity of the map at cascade stage ``stage_index`` to the original map.

    A randomised map that became constant (a ReLU'd CAM that is zero everywhere, say) has no rank
    correlation with anything; it keeps none of the original map's structure, so it counts as
    similarity 0 wherever the original map itself was informative (finite at stage 0).
    """
    original = part[part["stage_index"] == 0].set_index("item")["value"]
    stage = part[part["stage_index"] == stage_index]
    values = stage["value"].to_numpy(dtype=np.float64)
    informative = np.isfinite(original.reindex(stage["item"]).to_numpy(dtype=np.float64))
    return np.where(np.isnan(values) & informative, 0.0, values)
