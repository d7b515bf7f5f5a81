"""Published claims as data: parse ``config/claims.yaml``, evaluate each claim on the report's tables.

A claim is a typed, checkable statement with its source (paper, table or figure, evidence tag of
``references/method-specs.md``). Three kinds:

- ``verdict``: the sanity verdict of a method on a check is ``pass`` or ``fail`` (Adebayo et al. 2018;
  Kindermans et al. 2019), read from the report's verdict table;
- ``compare``: on a metric, every ``better`` method beats every ``worse`` one in the metric's direction
  (TorchRay's pointing-game ordering; Böhle et al. 2021). The difference of the two aggregates gets a
  *paired* bootstrap interval: each resample draws the items once for both methods
  (:func:`salbench.stats.paired_bootstrap`);
- ``value``: a method's metric is within ``tolerance`` of a published number (TorchRay's table; a
  study config's ``references``), with the summary's 95% interval (or a median and its interval).

Each claim is scoped to (data set, model) pairs by globs over their names, registered data sources and
architectures. Per pair, the outcome is *reproduced*, *not reproduced* or *not run* (the study has no
data for it), with ``decisive`` telling whether the 95% interval agrees with the point estimate.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import numpy as np
import pandas as pd
import yaml

from ..params import ConfigError
from ..sanity.verdicts import RULES
from ..stats import CI_LEVEL, group_rng, paired_bootstrap, percentile_interval, statistic_interval

KINDS = ("verdict", "compare", "value")
EVIDENCE = ("code", "res", "abs", "mem", "config")
OUTCOMES = ("reproduced", "not reproduced", "not run")
SCOPE_KEYS = ("datasets", "sources", "models", "archs")
COMMON_KEYS = {"id", "kind", "claim", "source", "scope", "note"}
KIND_KEYS = {
    "verdict": ({"method", "check", "expect"}, {"params"}),
    "compare": ({"metric", "better", "worse"}, set()),
    "value": ({"metric", "tolerance"}, {"method", "value", "values", "statistic", "params"}),
}
#: tolerance of a config ``references`` entry that gives none (absolute, in the metric's units)
REFERENCE_TOLERANCE = 0.02
CLAIM_COLUMNS = ["id", "kind", "claim", "paper", "where", "evidence", "dataset", "model", "subject", "metric",
                 "published", "ours", "ci_low", "ci_high", "outcome", "decisive", "note"]


class ClaimError(ConfigError):
    """An invalid claims file; the message names the claim id and the key."""


@dataclass(frozen=True)
class Claim:
    """One checkable published statement (see the module docstring for the kinds)."""

    id: str
    kind: str
    claim: str
    paper: str
    where: str
    evidence: str
    scope: dict[str, list[str]] = field(default_factory=dict)
    note: str = ""
    method: str | None = None
    params: dict[str, Any] = field(default_factory=dict)
    check: str | None = None
    expect: str | None = None
    metric: str | None = None
    better: tuple[str, ...] = ()
    worse: tuple[str, ...] = ()
    values: dict[str, float] = field(default_factory=dict)
    tolerance: float = 0.0
    statistic: str | None = None


# --------------------------------------------------------------------------------------------- parsing
def load_claims(path: str | Path, catalog: dict[str, Any] | None = None) -> list[Claim]:
    """The claims of a YAML file (``{version: 1, claims: [...]}``), validated; :class:`ClaimError` names the
    claim id and key of the first problem. Names are checked against the registry ``catalog``."""
    path = Path(path)
    if not path.is_file():
        raise ClaimError(f"claims file {path} does not exist")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as err:
        raise ClaimError(f"claims file {path} is not valid YAML: {err}") from err
    if not isinstance(data, dict) or set(data) - {"version", "claims"}:
        raise ClaimError(f"claims file {path}: expected the keys version and claims only")
    if data.get("version", 1) != 1:
        raise ClaimError(f"claims file {path}: version {data.get('version')!r} is not supported (1)")
    entries = data.get("claims") or []
    if not isinstance(entries, list):
        raise ClaimError(f"claims file {path}: 'claims' must be a list")
    claims = [parse_claim(entry, i, catalog) for i, entry in enumerate(entries)]
    seen: set[str] = set()
    for claim in claims:
        if claim.id in seen:
            raise ClaimError(f"claim {claim.id!r}: id is used twice")
        seen.add(claim.id)
    return claims


def parse_claim(entry: Any, index: int, catalog: dict[str, Any] | None = None) -> Claim:
    """One validated :class:`Claim` from its YAML mapping (``index`` names it when it has no id)."""
    if not isinstance(entry, dict):
        raise ClaimError(f"claim #{index}: must be a mapping, got {type(entry).__name__}")
    cid = entry.get("id")
    if not isinstance(cid, str) or not cid:
        raise ClaimError(f"claim #{index}: key 'id' is missing or not a string")

    def fail(key: str, problem: str) -> ClaimError:
        return ClaimError(f"claim {cid!r}: key {key!r}: {problem}")

    kind = entry.get("kind")
    if kind not in KINDS:
        raise fail("kind", f"{kind!r} is not one of {', '.join(KINDS)}")
    required, optional = KIND_KEYS[kind]
    for key in sorted(set(entry) - COMMON_KEYS - required - optional):
        raise fail(key, f"unknown for a {kind} claim; allowed: {', '.join(sorted(COMMON_KEYS | required | optional))}")
    for key in sorted(required | {"claim", "source"}):
        if key not in entry:
            raise fail(key, f"missing (a {kind} claim needs {', '.join(sorted(required | {'claim', 'source'}))})")
    source = entry["source"]
    if not isinstance(source, dict) or set(source) - {"paper", "where", "evidence"} or "paper" not in source:
        raise fail("source", "must be a mapping with paper (required), where and evidence")
    evidence = str(source.get("evidence", "mem"))
    if evidence not in EVIDENCE:
        raise fail("source.evidence", f"{evidence!r} is not one of {', '.join(EVIDENCE)}")
    scope = entry.get("scope") or {}
    if not isinstance(scope, dict) or set(scope) - set(SCOPE_KEYS):
        raise fail("scope", f"must be a mapping with keys among {', '.join(SCOPE_KEYS)}")
    fields: dict[str, Any] = {
        "id": cid, "kind": kind, "claim": _text(entry, "claim", fail), "paper": str(source["paper"]),
        "where": str(source.get("where", "")), "evidence": evidence, "note": str(entry.get("note", "")),
        "scope": {k: _names(v, f"scope.{k}", fail) for k, v in scope.items()},
    }
    names = (catalog or {}).get("methods")
    if kind == "verdict":
        fields["method"] = _known(_text(entry, "method", fail), names, "method", "registered method", fail)
        fields["check"] = _known(_text(entry, "check", fail), RULES, "check", "sanity check", fail)
        if entry["expect"] not in ("pass", "fail"):
            raise fail("expect", f"{entry['expect']!r} is not one of pass, fail")
        fields["expect"] = entry["expect"]
    else:
        fields["metric"] = _metric(_text(entry, "metric", fail), catalog, fail)
    if kind == "compare":
        fields["better"] = tuple(_known(n, names, "better", "registered method", fail)
                                 for n in _names(entry["better"], "better", fail))
        fields["worse"] = tuple(_known(n, names, "worse", "registered method", fail)
                                for n in _names(entry["worse"], "worse", fail))
    if kind == "value":
        fields.update(_values(entry, names, fail))
    if "params" in entry:
        if not isinstance(entry["params"], dict):
            raise fail("params", "must be a mapping of parameter values")
        fields["params"] = dict(entry["params"])
    return Claim(**fields)


def _text(entry: dict[str, Any], key: str, fail) -> str:
    value = entry[key]
    if not isinstance(value, str) or not value.strip():
        raise fail(key, "must be a non-empty string")
    return value.strip()


def _names(value: Any, key: str, fail) -> list[str]:
    """A name or a list of names."""
    names = [value] if isinstance(value, str) else value
    if not isinstance(names, list) or not names or not all(isinstance(n, str) and n for n in names):
        raise fail(key, "must be a name or a non-empty list of names")
    return list(names)


def _known(name: str, known: Any, key: str, what: str, fail) -> str:
    """``name`` if it matches a known name (glob allowed); no check without ``known``."""
    if known is not None and not fnmatch.filter(list(known), name):
        close = sorted(known, key=lambda k: _distance(k, name))[:3]
        raise fail(key, f"{name!r} is not a {what}; closest: {', '.join(close)}")
    return name


def _metric(name: str, catalog: dict[str, Any] | None, fail) -> str:
    if catalog is None or name.startswith("grid_localisation"):
        return name
    return _known(name, catalog.get("metrics"), "metric", "registered metric (or grid_localisation_NxN)", fail)


def _values(entry: dict[str, Any], names: Any, fail) -> dict[str, Any]:
    """The published numbers of a value claim: ``method`` + ``value``, or ``values: {method: number}``."""
    if ("values" in entry) == ("method" in entry or "value" in entry):
        raise fail("values", "give either method and value, or values: {method: number}")
    if "values" in entry:
        if not isinstance(entry["values"], dict) or not entry["values"]:
            raise fail("values", "must be a non-empty mapping of method to number")
        values = entry["values"]
    else:
        if "method" not in entry or "value" not in entry:
            raise fail("value" if "method" in entry else "method", "a value claim with method needs value too")
        values = {entry["method"]: entry["value"]}
    out = {}
    for method, number in values.items():
        _known(str(method), names, f"values.{method}", "registered method", fail)
        if isinstance(number, bool) or not isinstance(number, (int, float)) or not np.isfinite(number):
            raise fail(f"values.{method}", f"{number!r} is not a finite number")
        out[str(method)] = float(number)
    tolerance = entry["tolerance"]
    if isinstance(tolerance, bool) or not isinstance(tolerance, (int, float)) or tolerance < 0:
        raise fail("tolerance", f"{tolerance!r} is not a number >= 0")
    statistic = entry.get("statistic")
    if statistic not in (None, "mean", "median"):
        raise fail("statistic", f"{statistic!r} is not one of mean, median")
    return {"values": out, "tolerance": float(tolerance), "statistic": statistic}


def _distance(a: str, b: str) -> int:
    """Levenshtein distance (for 'closest' suggestions)."""
    row = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        prev, row[0] = row[0], i
        for j, cb in enumerate(b, 1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (ca != cb))
    return row[-1]


def reference_claims(config: dict[str, Any]) -> list[Claim]:
    """The config's ``references`` (a study's own published numbers) as ``value`` claims, scoped to their model
    and data set."""
    claims = []
    for i, ref in enumerate(config.get("references") or []):
        statistic = ref.get("statistic", "mean")
        claims.append(Claim(
            id=f"{config.get('study', 'study')}-reference-{i}", kind="value",
            claim=f"{ref['method']} scores {ref['value']} on {ref['metric']}"
                  + (f" ({statistic} over items)" if statistic != "mean" else ""),
            paper=str(ref["source"]), where="study config: references", evidence="config",
            scope={**({"models": [ref["model"]]} if ref.get("model") else {}),
                   **({"datasets": [ref["dataset"]]} if ref.get("dataset") else {})}, metric=ref["metric"],
            values={ref["method"]: float(ref["value"])}, tolerance=float(ref.get("tolerance", REFERENCE_TOLERANCE)),
            statistic=statistic,
        ))
    return claims


# ------------------------------------------------------------------------------------------ evaluation
@dataclass(frozen=True)
class Tables:
    """What claims are evaluated on: the report's tables and the study config."""

    config: dict[str, Any]
    scores: pd.DataFrame
    summary: pd.DataFrame
    verdicts: pd.DataFrame
    metric_info: dict[str, dict[str, Any]]
    n_boot: int = 1000
    seed: int = 0


def evaluate(claims: Iterable[Claim], tables: Tables, catalog: dict[str, Any] | None = None) -> pd.DataFrame:
    """One row per claim and (data set, model, subject) it applies to (:data:`CLAIM_COLUMNS`); a claim the
    study has no data for gets one ``not run`` row saying what is missing."""
    rows = []
    for claim in claims:
        base = {"id": claim.id, "kind": claim.kind, "claim": claim.claim, "paper": claim.paper,
                "where": claim.where, "evidence": claim.evidence}
        pairs = scoped_pairs(claim, tables.config)
        found = [] if not pairs else _EVALUATORS[claim.kind](claim, tables, pairs, catalog)
        if not pairs:
            found = [_not_run(claim, "no data set and model of this study is in the claim's scope "
                                     f"({_scope_text(claim.scope)})")]
        rows += [{**base, **row} for row in found]
    table = pd.DataFrame(rows, columns=CLAIM_COLUMNS)
    return table.astype({"ours": "float64", "ci_low": "float64", "ci_high": "float64"})


def scoped_pairs(claim: Claim, config: dict[str, Any]) -> list[tuple[str, str]]:
    """(data set, model) pairs of the config in the claim's scope (all pairs without one)."""
    datasets, models = config.get("datasets") or {}, config.get("models") or {}
    scope = claim.scope

    def keep(name: str, registered: str, names_key: str, registered_key: str) -> bool:
        return (_any_match(name, scope.get(names_key)) and _any_match(registered, scope.get(registered_key)))

    return [(d, m) for d in sorted(datasets) for m in sorted(models)
            if keep(d, str(datasets[d].get("source", d)), "datasets", "sources")
            and keep(m, str(models[m].get("arch", m)), "models", "archs")]


def _any_match(name: str, patterns: list[str] | None) -> bool:
    return patterns is None or any(fnmatch.fnmatchcase(name, p) for p in patterns)


def _scope_text(scope: dict[str, list[str]]) -> str:
    return "; ".join(f"{k}: {', '.join(v)}" for k, v in scope.items()) or "any"


def method_ids(name: str, config: dict[str, Any], params: dict[str, Any] | None = None,
               catalog: dict[str, Any] | None = None) -> list[str]:
    """Config method ids a claim's method name means: the id itself when the config has it, else every id
    whose registered method matches ``name``; with ``params``, only ids whose resolved params (config over the
    catalog's defaults) include those values."""
    specs = config.get("methods") or {}
    ids = [name] if name in specs else sorted(m for m, s in specs.items()
                                              if fnmatch.fnmatchcase(str((s or {}).get("method", m)), name))
    if not params:
        return ids
    defaults = (catalog or {}).get("methods", {})

    def resolved(method_id: str) -> dict[str, Any]:
        spec = specs[method_id] or {}
        return {**(defaults.get(str(spec.get("method", method_id))) or {}).get("params", {}), **(spec.get("params") or {})}

    return [m for m in ids if all(resolved(m).get(k) == v for k, v in params.items())]


def metric_ids(name: str, present: Iterable[str], config: dict[str, Any]) -> list[str]:
    """Metric ids of the study a claim's metric name or glob means (its id, or its registered metric)."""
    specs = config.get("metrics") or {}
    return sorted(m for m in set(present)
                  if fnmatch.fnmatchcase(m, name) or fnmatch.fnmatchcase(str((specs.get(m) or {}).get("metric", m)), name))


def _not_run(claim: Claim, why: str, **row: Any) -> dict[str, Any]:
    return {"dataset": "", "model": "", "subject": "", "metric": claim.metric or claim.check or "",
            "published": _published(claim), "ours": np.nan, "ci_low": np.nan, "ci_high": np.nan,
            "outcome": "not run", "decisive": pd.NA, "note": why, **row}


def _published(claim: Claim, method: str | None = None) -> str:
    if claim.kind == "verdict":
        return claim.expect or ""
    if claim.kind == "compare":
        return f"{' / '.join(claim.better)} better than {' / '.join(claim.worse)}"
    values = {method: claim.values[method]} if method else claim.values
    return ", ".join(f"{v:.4g} ± {claim.tolerance:.3g}" if method else f"{k} {v:.4g}" for k, v in values.items())


def _eval_verdict(claim: Claim, tables: Tables, pairs: list[tuple[str, str]], catalog) -> list[dict[str, Any]]:
    ids = method_ids(claim.method or "", tables.config, claim.params, catalog)
    if not ids:
        return [_not_run(claim, f"no method of this study is {claim.method}"
                                + (f" with {claim.params}" if claim.params else ""))]
    v = tables.verdicts
    rows = []
    for dataset, model in pairs:
        for method in ids:
            hit = (v[(v["dataset"] == dataset) & (v["model"] == model) & (v["method"] == method)
                     & (v["check"] == claim.check)] if not v.empty else v)
            where = {"dataset": dataset, "model": model, "subject": method, "metric": claim.check}
            if hit.empty:
                continue
            r = hit.iloc[0]
            trusted = None if pd.isna(r["trustworthy"]) else bool(r["trustworthy"])
            notes = [f"{'pass' if r['passed'] else 'fail'}: {r['statistic']} {r['passes_when']} {r['threshold']:g}"]
            if trusted is False:
                notes.append("the controls say this check is not trustworthy here")
            rows.append({**where, "published": claim.expect, "ours": r["value"], "ci_low": r["ci_low"],
                         "ci_high": r["ci_high"],
                         "outcome": _outcome(bool(r["passed"]) == (claim.expect == "pass")),
                         "decisive": bool(r["decisive"]) and trusted is not False, "note": "; ".join(notes)})
    return rows or [_not_run(claim, f"the study ran no {claim.check} check for {', '.join(ids)}")]


def _eval_compare(claim: Claim, tables: Tables, pairs: list[tuple[str, str]], catalog) -> list[dict[str, Any]]:
    better = {n: method_ids(n, tables.config, catalog=catalog) for n in claim.better}
    worse = {n: method_ids(n, tables.config, catalog=catalog) for n in claim.worse}
    missing = [n for n, ids in {**better, **worse}.items() if not ids]
    if missing:
        return [_not_run(claim, f"not in this study: {', '.join(missing)}")]
    metrics = metric_ids(claim.metric or "", tables.scores["metric"].unique(), tables.config)
    if not metrics:
        return [_not_run(claim, f"the study scored no metric {claim.metric}")]
    s = tables.scores
    rows = []
    for dataset, model in pairs:
        part = s[(s["dataset"] == dataset) & (s["model"] == model)]
        for metric in metrics:
            scored = part[part["metric"] == metric]
            info = tables.metric_info[metric]
            for a in [m for ids in better.values() for m in ids]:
                for b in [m for ids in worse.values() for m in ids]:
                    pair = scored[scored["method"].isin([a, b])]
                    if set(pair["method"]) != {a, b}:
                        continue
                    diff, low, high, n = paired_difference(pair, a, b, info, tables.n_boot,
                                                           group_rng(tables.seed, (dataset, model, metric, a, b)))
                    rows.append({"dataset": dataset, "model": model, "subject": f"{a} vs {b}", "metric": metric,
                                 "published": f"{a} {'>' if info['higher_is_better'] else '<'} {b}",
                                 "ours": diff, "ci_low": low, "ci_high": high, "outcome": _outcome(diff > 0),
                                 "decisive": bool(np.isfinite(low) and (low > 0 or high < 0)),
                                 "note": f"{a} minus {b}, oriented so that > 0 is better; {n} items"})
    return rows or [_not_run(claim, f"no (data set, model) in scope scored {claim.metric} for both sides")]


def paired_difference(scores: pd.DataFrame, a: str, b: str, info: dict[str, Any], n_boot: int,
                      rng: np.random.Generator, level: float = CI_LEVEL) -> tuple[float, float, float, int]:
    """(a's aggregate minus b's, oriented so that > 0 means a is better; its paired-bootstrap interval; items).

    Both aggregates are taken over the same item draws (each over its own scorable items, as the metric's
    aggregate prescribes), so the difference's interval is that of a paired comparison."""
    usable = np.isfinite(scores["value"].to_numpy(dtype=float))
    if "map_finite" in scores.columns:
        usable &= scores["map_finite"].to_numpy(dtype=bool)
    scores = scores.assign(value=scores["value"].where(usable))  # non-finite items are left out, as in the summary
    table = scores.pivot(index="item", columns="method", values="value")[[a, b]]
    targets = scores.drop_duplicates("item").set_index("item")["target"].reindex(table.index).to_numpy()
    values = table.to_numpy(dtype=float).T  # [2, N]
    sign = 1.0 if info["higher_is_better"] else -1.0
    how = info["aggregate"]
    point, boot = paired_bootstrap(values, targets, how, n_boot, rng)
    diffs = sign * (boot[:, 0] - boot[:, 1])
    diffs = diffs[np.isfinite(diffs)]
    low, high = percentile_interval(diffs, level) if diffs.size else (np.nan, np.nan)
    return float(sign * (point[0] - point[1])), float(low), float(high), int(values.shape[1])


def _eval_value(claim: Claim, tables: Tables, pairs: list[tuple[str, str]], catalog) -> list[dict[str, Any]]:
    metrics = metric_ids(claim.metric or "", tables.scores["metric"].unique(), tables.config)
    if not metrics:
        return [_not_run(claim, f"the study scored no metric {claim.metric}")]
    rows, absent = [], []
    summary = tables.summary.set_index(["dataset", "model", "method", "metric"])
    for name, published in claim.values.items():
        ids = method_ids(name, tables.config, claim.params, catalog)
        if not ids:
            absent.append(name)
            continue
        for dataset, model in pairs:
            for method in ids:
                for metric in metrics:
                    key = (dataset, model, method, metric)
                    if key not in summary.index:
                        continue
                    ours, low, high, how = _statistic(claim, tables, key, summary.loc[key])
                    inside = abs(ours - published) <= claim.tolerance
                    band = (published - claim.tolerance, published + claim.tolerance)
                    decisive = bool(band[0] <= low and high <= band[1]) if inside else bool(high < band[0] or low > band[1])
                    rows.append({"dataset": dataset, "model": model, "subject": method, "metric": metric,
                                 "published": _published(claim, name), "ours": ours, "ci_low": low, "ci_high": high,
                                 "outcome": _outcome(inside), "decisive": decisive,
                                 "note": f"{how}; |ours - published| = {abs(ours - published):.3g}"})
    if rows:
        return rows
    why = f"not in this study: {', '.join(absent)}" if len(absent) == len(claim.values) else \
        f"no (data set, model) in scope scored {claim.metric} for {', '.join(claim.values)}"
    return [_not_run(claim, why)]


def _statistic(claim: Claim, tables: Tables, key: tuple[str, str, str, str], row: pd.Series
               ) -> tuple[float, float, float, str]:
    """Our number for a value claim: the summary's aggregate and interval, or the median over items with a
    percentile-bootstrap interval."""
    if claim.statistic != "median":
        return float(row["value"]), float(row["ci_low"]), float(row["ci_high"]), f"{row['aggregate']} over items"
    s = tables.scores
    values = s[(s["dataset"] == key[0]) & (s["model"] == key[1]) & (s["method"] == key[2])
               & (s["metric"] == key[3])]["value"].to_numpy(dtype=float)
    if not np.isfinite(values).any():
        return float("nan"), float("nan"), float("nan"), "median over items (none scorable)"
    median, low, high = statistic_interval(values, lambda drawn: np.median(drawn, axis=1), n_boot=tables.n_boot,
                                           rng=group_rng(tables.seed, (*key, "median")))
    return median, low, high, "median over items"


def _outcome(reproduced: bool) -> str:
    return "reproduced" if reproduced else "not reproduced"


_EVALUATORS = {"verdict": _eval_verdict, "compare": _eval_compare, "value": _eval_value}


def counts(table: pd.DataFrame) -> dict[str, int]:
    """Claims (not rows) per outcome: a claim is reproduced when every evaluated row is, not run when none ran."""
    out = dict.fromkeys(OUTCOMES, 0)
    for _, rows in table.groupby("id", sort=False):
        ran = rows[rows["outcome"] != "not run"]
        out["not run" if ran.empty else
            "reproduced" if (ran["outcome"] == "reproduced").all() else "not reproduced"] += 1
    return out


# ------------------------------------------------------------------------------------------- the section
EVIDENCE_MEANING = {"code": "read in the authors' or the reference code", "res": "computed from shipped result files",
                    "abs": "the abstract's wording", "mem": "unverified recollection of the paper: check the PDF",
                    "config": "the study config's references"}
TEXT_COLUMNS = ["claim", "paper", "where", "evidence", "dataset", "model", "subject", "metric", "published", "note"]


def shown_path(path: Path | None) -> str | None:
    """A claims file as the page names it: its last two path parts (no absolute path on the page)."""
    if path is None:
        return None
    path = Path(path)
    return f"{path.parent.name}/{path.name}" if path.parent.name else path.name


def grouped(table: pd.DataFrame) -> list[dict[str, Any]]:
    """The evaluated claims in file order, each with its source and one entry per (data set, model, subject) it
    was evaluated on: the published and our numbers, the outcome and whether the interval agrees (``decisive``;
    None when not run)."""
    table = table.assign(**{c: table[c].fillna("").astype(str) for c in TEXT_COLUMNS})  # a CSV read back has NaN
    out = []
    for cid, rows in table.groupby("id", sort=False):
        first = rows.iloc[0]
        entries = []
        for r in rows.itertuples():
            ran = r.outcome != "not run"
            entries.append({"dataset": r.dataset, "model": r.model, "subject": r.subject, "metric": r.metric,
                            "published": r.published, "ours": None if pd.isna(r.ours) else float(r.ours),
                            "ci_low": None if pd.isna(r.ci_low) else float(r.ci_low),
                            "ci_high": None if pd.isna(r.ci_high) else float(r.ci_high), "outcome": r.outcome,
                            "decisive": bool(r.decisive) if ran and not pd.isna(r.decisive) else None,
                            "note": r.note})
        out.append({"id": str(cid), "claim": first["claim"], "paper": first["paper"], "where": first["where"],
                    "evidence": first["evidence"], "rows": entries})
    return out


def claims_by_method(table: pd.DataFrame) -> dict[str, list[dict[str, Any]]]:
    """Per method id, the claims evaluated on it (as subject, or as a side of a comparison ``a vs b``)."""
    out: dict[str, list[dict[str, Any]]] = {}
    for r in table[table["outcome"] != "not run"].itertuples():
        for method in dict.fromkeys(str(r.subject).split(" vs ")):
            out.setdefault(method, []).append({"id": r.id, "claim": r.claim, "dataset": r.dataset, "model": r.model,
                                               "metric": r.metric, "outcome": r.outcome})
    return out
