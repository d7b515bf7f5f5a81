"""Saliency cards (Boggust et al., "Saliency Cards: A Framework to Characterize and Compare Saliency Methods",
FAccT 2023; references/newer-checks.md section 6): one card per method, each attribute filled from this study's
own measurements with a verdict (pass, fail or inconclusive), a one-line reason and a link to its evidence.

Attributes (the cards' methodology and sensitivity groups, plus the study's standing per metric family):

- **determinism**: a rerun gives identical maps. Read from the maps stores: whether the method draws random
  numbers (a ``seed`` among its registered params) and the seed each job recorded, and torch's determinism
  settings on the device each job ran on (CPU kernels are deterministic; on a GPU only torch's strict
  deterministic mode guarantees it).
- **hyperparameter dependence**: whether the ranks depend on the method's settings. Measured only when the study
  runs several settings of the same registered method: fails when two settings' rank intervals are disjoint on some
  metric; inconclusive with a single setting.
- **model agnosticism**: the access to the model it needs (catalog: a named layer, a GAP+FC head, propagation
  rules, one model family), pass when it needs none beyond outputs and input gradients.
- **computational efficiency**: measured seconds per item (``compute_s`` of the maps stores over their items) on
  the job's device; fails beyond :data:`COST_RATIO` times the study's median method on the same data set and model.
- **input / label / model sensitivity**: the sanity verdicts of the checks declaring that sensitivity; a check that a
  control passes (not trustworthy) or that rewards noise is not counted.
- **localisation / faithfulness / minimality**: the metric families' standing: the mean rank over the family's
  metrics, pass when the method beats the best control on every metric of the family, fail when on none.

Torch-free and matplotlib-free.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Iterable

import numpy as np
import pandas as pd

from ..sanity.checks import CHECKS, SENSITIVITIES

PASS, FAIL, INCONCLUSIVE = "pass", "fail", "inconclusive"
STATUSES = (PASS, FAIL, INCONCLUSIVE)
#: the sensitivity attributes, each read from the checks that declare that sensitivity (``Check.sensitivity``)
SENSITIVITY = {f"{kind} sensitivity": kind for kind in SENSITIVITIES}
#: the metric family behind each standing attribute
STANDING = {"localisation": "localisation", "faithfulness": "faithfulness", "minimality": "complexity"}
#: a method costing more than this many times the study's median method (same data set and model) fails efficiency
COST_RATIO = 10.0
#: registered params that are no hyperparameters: batch sizes change only how fast a map is computed, the seed is
#: the determinism attribute's
NOT_HYPERPARAMETERS = frozenset({"max_batch", "internal_batch_size", "batch_size", "seed"})
#: the card's attributes in the order they are shown, with the card group each belongs to
ATTRIBUTES = (("determinism", "methodology"), ("hyperparameter dependence", "methodology"),
              ("model agnosticism", "methodology"), ("computational efficiency", "methodology"),
              *((name, "sensitivity") for name in SENSITIVITY), *((name, "standing") for name in STANDING))
CARD_FORMAT = "salbench saliency card 1"
REFERENCE = "Boggust, Suresh, Strobelt, Guttag & Satyanarayan. Saliency Cards. FAccT 2023. arXiv:2206.02958"


@dataclass(frozen=True)
class Attribute:
    """One filled attribute of a card: its verdict, why, and where on the report the evidence is."""

    attribute: str
    group: str
    status: str
    summary: str
    evidence: str

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ValueError(f"attribute {self.attribute!r}: status {self.status!r} is not one of {STATUSES}")


@dataclass(frozen=True)
class Run:
    """What a card reads of one maps store (one saliency job, shards gathered)."""

    dataset: str
    model: str
    method: str
    seed: Any
    device: str
    n_items: int
    compute_s: float
    deterministic_mode: bool
    warn_only: bool

    @property
    def seconds_per_item(self) -> float:
        return self.compute_s / self.n_items if self.n_items else math.nan


def run_of(attrs: dict[str, Any], n_items: int) -> Run:
    """A :class:`Run` from a maps store's attrs and item count (``compute_s``, else ``runtime_s``)."""
    determinism = ((attrs.get("provenance") or {}).get("determinism")) or {}
    seconds = attrs.get("compute_s", attrs.get("runtime_s"))
    return Run(dataset=str(attrs.get("dataset")), model=str(attrs.get("model")), method=str(attrs.get("method")),
               seed=attrs.get("seed"), device=str(attrs.get("device", "unknown")), n_items=int(n_items),
               compute_s=float(seconds) if seconds is not None else math.nan,
               deterministic_mode=bool(determinism.get("deterministic_algorithms", False)),
               warn_only=bool(determinism.get("deterministic_warn_only", False)))


def _attribute(name: str, status: str, summary: str, evidence: str) -> Attribute:
    return Attribute(name, dict(ATTRIBUTES)[name], status, summary, evidence)


def determinism(runs: list[Run], stochastic: bool, evidence: str) -> Attribute:
    """Whether rerunning the method's jobs gives the same maps."""
    name = "determinism"
    if not runs:
        return _attribute(name, INCONCLUSIVE, "no maps of this method were stored", evidence)
    unseeded = [r for r in runs if stochastic and r.seed is None]
    if unseeded:
        return _attribute(name, FAIL, f"draws random numbers, but {len(unseeded)} job(s) recorded no seed", evidence)
    loose = sorted({r.device for r in runs
                    if not r.device.startswith("cpu") and (not r.deterministic_mode or r.warn_only)})
    how = (f"seeded (seed {', '.join(sorted({str(r.seed) for r in runs}))} recorded): the same seed gives the same "
           "maps" if stochastic else "draws no random numbers")
    if loose:
        return _attribute(name, INCONCLUSIVE, f"{how}, but ran on {', '.join(loose)} where torch's deterministic mode "
                          "only warns about kernels without a deterministic version", evidence)
    devices = ", ".join(sorted({r.device for r in runs}))
    return _attribute(name, PASS, f"{how}; deterministic kernels on {devices}", evidence)


def hyperparameters(method: str, params: dict[str, Any], variants: dict[str, dict[str, Any]],
                    ranks: pd.DataFrame, evidence: str) -> Attribute:
    """Whether the method's ranks depend on its settings: ``variants`` are the study's method ids running the same
    registered method (``method`` included) with their params; ``ranks`` the rank table (rank intervals)."""
    name = "hyperparameter dependence"
    tunable = sorted(k for k in params if k not in NOT_HYPERPARAMETERS)
    if not tunable:
        return _attribute(name, PASS, "has no hyperparameters that change its maps", evidence)
    others = sorted(set(variants) - {method})
    listed = ", ".join(tunable)
    if not others:
        return _attribute(name, INCONCLUSIVE, f"one setting of {listed} ran; run several to measure it", evidence)
    if ranks.empty:
        return _attribute(name, INCONCLUSIVE, f"{len(others) + 1} settings of {listed} ran, but no metric ranked "
                          "them", evidence)
    mine = ranks[ranks["method"].isin([method, *others])]
    disjoint = []
    for (dataset, model, metric), part in mine.groupby(["dataset", "model", "metric"], sort=True):
        own = part[part["method"] == method]
        if own.empty or own["rank_low"].isna().all():
            continue
        low, high = float(own["rank_low"].iloc[0]), float(own["rank_high"].iloc[0])
        apart = part[(part["method"] != method) & ((part["rank_low"] > high) | (part["rank_high"] < low))]
        disjoint += [f"{metric} on {dataset}/{model} vs {m}" for m in apart["method"]]
    settings = f"{len(others) + 1} settings ({', '.join([method, *others])}) of {listed}"
    if disjoint:
        return _attribute(name, FAIL, f"{settings}: rank intervals disjoint on {'; '.join(disjoint[:3])}"
                          + (f" and {len(disjoint) - 3} more" if len(disjoint) > 3 else ""), evidence)
    return _attribute(name, PASS, f"{settings}: rank intervals overlap on every metric", evidence)


def agnosticism(entry: dict[str, Any], evidence: str) -> Attribute:
    """The access to the model the method needs, from its catalog entry."""
    name = "model agnosticism"
    if not entry.get("uses_model", True):
        return _attribute(name, PASS, "reads no model (a control baseline)", evidence)
    needs = []
    if entry.get("model_family"):
        needs.append(f"a model of family {entry['model_family']}")
    if entry.get("needs_gap_fc"):
        needs.append("a global-average-pooling and linear head")
    elif entry.get("needs_layer"):
        needs.append("a named internal layer")
    needs += [f"model support for {r.replace('_', ' ')}" for r in entry.get("requires") or []]
    if needs:
        return _attribute(name, FAIL, f"needs {', '.join(dict.fromkeys(needs))}", evidence)
    return _attribute(name, PASS, "needs only the model's outputs (and gradients with respect to the input)", evidence)


def efficiency(runs: list[Run], medians: dict[tuple[str, str], float], evidence: str) -> Attribute:
    """Measured seconds per item against the study's median method on the same data set and model."""
    name = "computational efficiency"
    timed = [r for r in runs if math.isfinite(r.seconds_per_item)]
    if not timed:
        return _attribute(name, INCONCLUSIVE, "no runtime was recorded", evidence)
    ratios = [r.seconds_per_item / medians[(r.dataset, r.model)] for r in timed
              if medians.get((r.dataset, r.model), 0) > 0]
    cost = "; ".join(f"{r.seconds_per_item:.3g} s per item on {r.dataset}/{r.model} ({r.device})" for r in timed)
    if not ratios:
        return _attribute(name, INCONCLUSIVE, cost, evidence)
    ratio = max(ratios)
    status = PASS if ratio <= COST_RATIO else FAIL
    return _attribute(name, status, f"{cost}: {ratio:.1f}x the study's median method", evidence)


def sensitivity_checks(name: str) -> tuple[str, ...]:
    """The registered checks (plugins loaded so far included) behind sensitivity attribute ``name``."""
    return tuple(e.name for e in CHECKS.entries() if e.obj.sensitivity == SENSITIVITY[name])


def sensitivity(name: str, verdicts: pd.DataFrame, evidence: str) -> Attribute:
    """One sensitivity attribute from the method's sanity verdicts of :func:`sensitivity_checks`: fail on a
    decisive fail of a usable check, pass when every usable verdict is a decisive pass, inconclusive otherwise. A
    check is usable unless a control passes it (not trustworthy) or it rewards noise."""
    checks = sensitivity_checks(name)
    rows = verdicts[verdicts["check"].isin(checks)] if not verdicts.empty else verdicts
    if rows.empty:
        return _attribute(name, INCONCLUSIVE, f"none of its checks ({', '.join(checks)}) ran", evidence)
    untrusted = rows["trustworthy"].map(lambda v: flag(v) is False)
    noisy = rows["rewards_noise"].map(lambda v: flag(v) is True) if "rewards_noise" in rows else False
    usable = rows[~(untrusted | noisy)]
    parts = [f"{r.check} on {r.dataset}/{r.model}: {'pass' if r.passed else 'fail'}{'' if r.decisive else ' ?'}"
             for r in rows.itertuples()]
    ignored = len(rows) - len(usable)
    tail = f" ({ignored} verdict(s) of untrusted checks not counted)" if ignored else ""
    if (~usable["passed"].astype(bool) & usable["decisive"].astype(bool)).any():
        status = FAIL
    elif len(usable) and (usable["passed"].astype(bool) & usable["decisive"].astype(bool)).all():
        status = PASS
    else:
        status = INCONCLUSIVE
    return _attribute(name, status, "; ".join(parts) + tail, evidence)


def flag(value: Any) -> bool | None:
    """A table's True/False/missing flag as a bool or None."""
    return None if value is None or pd.isna(value) else bool(value)


def beats_status(beats: pd.Series) -> str:
    """Pass when a method beats the best control on every one of its metric values, fail on none, inconclusive in
    between; "" without a value to judge (no control, or the method is one)."""
    beats = beats.dropna().astype(bool)
    return "" if beats.empty else PASS if beats.all() else FAIL if not beats.any() else INCONCLUSIVE


def standing(name: str, summary: pd.DataFrame, ranks: pd.DataFrame, families: dict[str, str],
             evidence: str) -> Attribute:
    """One metric family's standing: mean rank over its metrics and whether the method beats the best control."""
    family = STANDING[name]
    metrics = {m for m, f in families.items() if f == family}
    rows = summary[summary["metric"].isin(metrics)] if not summary.empty else summary
    if rows.empty:
        return _attribute(name, INCONCLUSIVE, f"no {family} metric scored this method", evidence)
    mine = ranks[ranks["metric"].isin(metrics)] if not ranks.empty else ranks
    rank = [f"mean rank {mine.loc[(mine['dataset'] == d) & (mine['model'] == m), 'rank'].mean():.1f} of "
            f"{int(mine.loc[(mine['dataset'] == d) & (mine['model'] == m), 'n_ranked'].max())} on {d}/{m}"
            for d, m in sorted(set(zip(mine["dataset"], mine["model"])))] if not mine.empty else []
    status = beats_status(rows["beats_controls"])
    text = (", ".join(rank) or f"{family} metrics") + ": "
    if not status:
        return _attribute(name, INCONCLUSIVE, text + "no control to compare with (or a control itself)", evidence)
    beats = rows["beats_controls"].dropna().astype(bool)
    text += f"beats the best control on {int(beats.sum())} of {len(beats)} {family} metric values"
    return _attribute(name, status, text, evidence)


def cost_medians(runs: Iterable[Run], controls: set[str]) -> dict[tuple[str, str], float]:
    """The median seconds per item over the study's (non-control) methods, per (data set, model)."""
    by_pair: dict[tuple[str, str], list[float]] = {}
    for r in runs:
        if r.method not in controls and math.isfinite(r.seconds_per_item):
            by_pair.setdefault((r.dataset, r.model), []).append(r.seconds_per_item)
    return {pair: float(np.median(values)) for pair, values in by_pair.items()}


def card(method: str, *, registered: str, entry: dict[str, Any], params: dict[str, Any], family: str, control: bool,
         attributes: list[Attribute], runs: list[Run], study: str) -> dict[str, Any]:
    """A card as JSON data (``cards/<method>.json`` and the section's context)."""
    counts = {s: sum(a.status == s for a in attributes) for s in STATUSES}
    return {
        "format": CARD_FORMAT, "reference": REFERENCE, "study": study, "method": method, "registered": registered,
        "family": family, "control": control, "description": entry.get("description", ""),
        "citation": entry.get("citation", ""), "params": params, "counts": counts,
        "attributes": [asdict(a) for a in attributes],
        "runs": [{"dataset": r.dataset, "model": r.model, "device": r.device, "seed": r.seed, "n_items": r.n_items,
                  "seconds_per_item": r.seconds_per_item if math.isfinite(r.seconds_per_item) else None}
                 for r in runs],
        "not_assessed": ["semantic directness (descriptive: what the map's values mean)",
                         "perceptibility tests with people"],
    }
