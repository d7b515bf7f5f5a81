"""Pass/fail verdicts per (method, check), with bootstrap intervals, validated by the controls and the noise trap.

Each registered check (:mod:`.checks`) reduces to a per-item statistic; the verdict compares its mean over
items with a threshold and reports a percentile-bootstrap confidence interval of that mean (Efron &
Tibshirani, *An Introduction to the Bootstrap*, 1993). Model-independent controls validate the checks
(Hooker et al., NeurIPS 2019, use Sobel edges and random maps as such controls; Adebayo et al.,
NeurIPS 2018, show that an edge detector's map is unaffected by model randomisation): each check names the
controls that must fail it. When a control passes a check it must fail, the check cannot tell explanations
from model-independent maps, so every verdict of that check is marked not trustworthy.

The noise trap (Binder et al., CVPR 2023: uninformative maps with zero pixel-wise covariance score well in
randomisation checks): a check *rewards noise* when it scores a noisy copy of a method's map (the ``noisy``
wrapper: the RMS-normalised map plus fresh i.i.d. noise) better than the clean map, i.e. the 95% bootstrap
interval of the paired per-item difference (noisy - clean) lies beyond 0 in the check's favourable direction.
Every verdict of such a check is marked ``rewards_noise``: passing it says little.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any, Mapping

import numpy as np
import pandas as pd

from ..params import ParamError, resolve_params
from ..stats import bootstrap_interval as bootstrap
from .checks import CHECKS, MEASURE, controls as registered_controls, fraction_stage


@dataclass(frozen=True)
class Rule:
    """How a check's per-item ``statistic`` becomes a verdict: pass when its mean is ``passes_when`` ``threshold``."""

    statistic: str
    passes_when: str
    threshold: float

    def passes(self, value: float) -> bool:
        return bool(value < self.threshold) if self.passes_when == "below" else bool(value > self.threshold)


def registered_rules() -> dict[str, Rule]:
    """The default rule of every registered check (thresholds are overridable per check)."""
    return {e.name: Rule(e.obj.rule, e.obj.passes_when, e.obj.threshold) for e in CHECKS.entries()}


#: the default rules of the checks registered at import (what claims name)
RULES: dict[str, Rule] = registered_rules()
#: check -> the statistic of a sanity table its verdict reads ("measure" = the configured similarity measure)
VERDICT_STATISTIC: dict[str, str] = {e.name: e.obj.statistic for e in CHECKS.entries()}
#: control method -> the checks it must fail
CONTROLS: dict[str, tuple[str, ...]] = registered_controls()


def check_rules(thresholds: Mapping[str, float] | None = None) -> dict[str, Rule]:
    """The registered checks' rules with ``thresholds`` (check -> number) overriding the defaults; unknown checks
    are an error."""
    rules = registered_rules()
    defaults = {check: rule.threshold for check, rule in rules.items()}
    given = resolve_params("check", "verdicts", defaults, thresholds or {})
    for check, value in given.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ParamError(f"check {check!r}: threshold must be a number, got {value!r}")
    return {check: replace(rule, threshold=float(given[check])) for check, rule in rules.items()}


def bootstrap_interval(
    values: Any, n_boot: int = 2000, level: float = 0.95, seed: int = 0
) -> tuple[float, float, float]:
    """``(mean, low, high)``: the mean of the finite ``values`` and its percentile-bootstrap ``level`` interval.

    ``n_boot`` resamples of the items (:func:`salbench.stats.bootstrap_interval`, seeded by ``seed``); all NaN
    when no value is finite.
    """
    data = np.asarray(values, dtype=np.float64).ravel()
    return bootstrap(data[np.isfinite(data)], n_boot=n_boot, rng=np.random.default_rng(seed), level=level)


@dataclass(frozen=True)
class NoiseTrap:
    """The noise trap of one check on one (noisy, clean) method pair: the paired per-item difference
    ``noisy - clean`` of the check's statistic, its bootstrap interval, and whether it favours the noise."""

    check: str
    noisy: str
    clean: str
    difference: float
    ci_low: float
    ci_high: float
    n_items: int
    rewards_noise: bool


def noise_trap(check: str, noisy: str, clean: str, noisy_values: Any, clean_values: Any, n_boot: int = 2000,
               level: float = 0.95, seed: int = 0) -> NoiseTrap:
    """Whether ``check`` scores the ``noisy`` method's maps better than the ``clean`` ones they add noise to.

    The values are per item, the same items in the same order; items not finite in both are left out. The
    check rewards noise when the interval of the mean difference lies beyond 0 in its favourable direction
    (above 0 for a check that passes above its threshold, below 0 for one that passes below it).
    """
    a, b = np.asarray(noisy_values, dtype=np.float64), np.asarray(clean_values, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"check {check!r}: {noisy!r} has {a.size} values, {clean!r} {b.size}; the noise trap "
                         "pairs the same items")
    difference = (a - b)[np.isfinite(a) & np.isfinite(b)]
    mean, low, high = bootstrap_interval(difference, n_boot, level, seed)
    favours = low > 0 if CHECKS.get(check).higher_is_better else high < 0
    return NoiseTrap(check, noisy, clean, mean, low, high, int(difference.size), bool(difference.size and favours))


@dataclass(frozen=True)
class Verdict:
    """One (method, check) verdict.

    ``decisive``: the interval lies entirely on one side of the threshold. ``trustworthy``: True when the
    check's controls fail it as they must, False when one passes, None when no control validates it.
    ``rewards_noise``: True when the check scores some noisy method better than its clean original, False
    when every such pair was tested and none was, None when none was tested. A noisy method's own verdict
    carries its noise trap (``clean_method`` and the paired difference ``noise_gain`` with its interval).
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
    rewards_noise: bool | None = None
    clean_method: str = ""
    noise_gain: float = float("nan")
    noise_ci_low: float = float("nan")
    noise_ci_high: float = float("nan")
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


def noise_traps(stats: Mapping[tuple[str, str], Any], noisy_pairs: Mapping[str, str], n_boot: int = 2000,
                level: float = 0.95, seed: int = 0) -> list[NoiseTrap]:
    """The noise trap of every check on every (noisy method -> clean method) pair with values for both."""
    return [noise_trap(check, noisy, clean, values, stats[(clean, check)], n_boot, level, seed)
            for (noisy, check), values in stats.items()
            if (clean := noisy_pairs.get(noisy)) is not None and (clean, check) in stats]


def _noise_note(traps: list[NoiseTrap]) -> tuple[bool | None, str]:
    if not traps:
        return None, ""
    rewarded = [t for t in traps if t.rewards_noise]
    if rewarded:
        return True, "rewards noise: scores " + ", ".join(f"{t.noisy} better than {t.clean}" for t in rewarded)
    return False, "noisy maps do not score better than their clean originals"


def verdicts(
    stats: Mapping[tuple[str, str], Any],
    thresholds: Mapping[str, float] | None = None,
    controls: Mapping[str, tuple[str, ...]] | None = None,
    n_boot: int = 2000,
    level: float = 0.95,
    seed: int = 0,
    noisy_pairs: Mapping[str, str] | None = None,
) -> list[Verdict]:
    """Verdicts for per-item statistics ``stats[(method, check)]``, each marked by its check's control validation
    and noise trap (``noisy_pairs``: noisy method -> the clean method it adds noise to, both keys of ``stats``).
    ``controls``: method -> the checks it must fail (default: the registered checks' controls, plugins included)."""
    controls = registered_controls() if controls is None else controls
    rules = check_rules(thresholds)
    unknown = sorted({check for _, check in stats} - set(rules))
    if unknown:
        raise ParamError(f"unknown check {unknown[0]!r}; allowed: {', '.join(rules)}")
    results = {key: verdict(*key, values, rules[key[1]], n_boot, level, seed) for key, values in stats.items()}
    checks = {check for _, check in results}
    trust = {check: _trust(check, results, controls) for check in checks}
    traps = noise_traps(stats, noisy_pairs or {}, n_boot, level, seed)
    noise = {check: _noise_note([t for t in traps if t.check == check]) for check in checks}
    own_trap = {(t.noisy, t.check): t for t in traps}
    judged = []
    for result in results.values():
        trusted, why = trust[result.check]
        rewards, noise_why = noise[result.check]
        fields: dict[str, Any] = {}
        if (trap := own_trap.get((result.method, result.check))) is not None:
            fields = {"clean_method": trap.clean, "noise_gain": trap.difference, "noise_ci_low": trap.ci_low,
                      "noise_ci_high": trap.ci_high}
        judged.append(replace(result, trustworthy=trusted, rewards_noise=rewards, **fields,
                              note="; ".join(filter(None, [result.note, why, noise_why]))))
    return judged


def verdict_values(table: pd.DataFrame, measure: str, top_fraction: float = 0.5) -> dict[str, np.ndarray]:
    """Per registered check, the per-item values its verdict reads from one method's sanity table.

    A check reads its ``rows`` and ``statistic`` (``measure`` for :data:`~.checks.MEASURE`); a cascade check
    reads its last stage (the fully randomised model) or the stage after ``ceil(top_fraction * stages)``.
    """
    out = {}
    for entry in CHECKS.entries():
        check = entry.obj
        wanted = measure if check.statistic == MEASURE else check.statistic
        part = table[(table["check"] == check.rows) & (table["statistic"] == wanted)]
        if part.empty:
            continue
        last = int(part["stage_index"].max())
        if check.stage == "last":
            out[check.name] = cascade_stage(part, last)
        elif check.stage == "fraction":
            out[check.name] = cascade_stage(part, fraction_stage(last, top_fraction))
        else:
            out[check.name] = part["value"].to_numpy(dtype=np.float64)
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
