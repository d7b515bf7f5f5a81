"""Tables of the report: tidy per-item scores in, one summary row per (dataset, model, method, metric) out.

Each summary row holds the metric's aggregate over scorable items, the number of items behind it, the
items left out (``n_excluded``: a NaN the metric returns for an item it cannot score, such as an empty
mask; ``n_nonfinite``: an item whose map held a NaN or Inf, or a metric value of +-Inf; neither is
ever averaged in), and a seeded percentile-bootstrap 95% interval that
resamples items and then aggregates the way the metric does ("mean", or "class_mean": the mean over
target classes of the per-class mean, as in the TorchRay pointing game).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterable

import numpy as np
import pandas as pd

from ..stats import CI_LEVEL, bootstrap_interval, group_rng, paired_aggregates  # noqa: F401  (CI_LEVEL: sections)

SCORE_COLUMNS = ["dataset", "model", "method", "item", "target", "metric", "value"]
GROUP_COLUMNS = ["dataset", "model", "method", "metric"]
SUMMARY_COLUMNS = [*GROUP_COLUMNS, "aggregate", "higher_is_better", "value", "ci_low", "ci_high", "n_items",
                   "n_excluded", "n_nonfinite", "n_classes", "best", "beats_controls"]
#: registered names of the control baselines: a method that does not beat them explains nothing
CONTROL_METHODS = ("centre", "random", "sobel")
RUN_COLUMNS = ["dataset", "model", "method", "method_name", "method_params", "seed", "device", "host", "git_revision",
               "salbench", "torch", "python", "runtime_s", "checkpoint_sha256", "data_manifest_sha256"]
#: metric families in report order (the modules of src/salbench/metrics); others follow by name
FAMILY_ORDER = ("localisation", "faithfulness", "complexity")
OTHER_FAMILY = "other"


def write_frame(frame: pd.DataFrame, path: Path) -> Path:
    """Write a report table atomically: parquet through :func:`salbench.store.write_table`, with its checksum (so
    ``read_table`` and ``salbench verify`` check it like every other table), CSV as plain text for people."""
    from ..store import atomic_path, write_table

    if path.suffix == ".parquet":
        return write_table(frame, path)
    if path.suffix != ".csv":
        raise ValueError(f"cannot write table {path}: expected a .parquet or .csv name")
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, index=False)
    return path


def read_tidy(path: Path, columns: Iterable[str], kind: str) -> pd.DataFrame:
    """A checksummed ``kind`` table (store.read_table), refused with the missing names when it lacks ``columns``."""
    from ..store import read_table

    frame = read_table(path)
    missing = sorted(set(columns) - set(frame.columns))
    if missing:
        raise ValueError(f"{kind} table {path} lacks columns {', '.join(missing)}")
    return frame


def load_scores(files: Iterable[Path]) -> pd.DataFrame:
    """Concatenate tidy score tables (checksums verified); rows sorted by (dataset, model, method, metric),
    item order kept. ``map_finite`` (False: the item's map held a NaN or Inf) is True where a table lacks it."""
    frames = []
    for path in files:
        frame = read_tidy(path, SCORE_COLUMNS, "score")
        if "map_finite" not in frame.columns:
            frame = frame.assign(map_finite=True)
        frames.append(frame[[*SCORE_COLUMNS, "map_finite"]])
    if not frames:
        raise ValueError("no score tables given")
    dtypes = {"dataset": str, "model": str, "method": str, "item": str, "target": "int64", "metric": str,
              "value": "float64", "map_finite": bool}
    scores = pd.concat(frames, ignore_index=True).astype(dtypes)
    duplicated = scores.duplicated(["dataset", "model", "method", "item", "metric"])
    if duplicated.any():
        first = scores[duplicated].iloc[0]
        raise ValueError(f"item {first['item']!r} is scored twice for {first['dataset']}/{first['model']}/"
                         f"{first['method']}/{first['metric']}")
    return scores.sort_values(GROUP_COLUMNS, kind="stable").reset_index(drop=True)


def aggregate(values: np.ndarray, targets: np.ndarray, how: str) -> float:
    """``how`` = "mean" over items, or "class_mean": mean over classes of the per-class mean (no NaN in)."""
    values = np.asarray(values, dtype=np.float64)
    return float(paired_aggregates(values[None], targets, how, np.ones((1, values.size)))[0, 0])


def summarise(scores: pd.DataFrame, metric_info: dict[str, dict[str, Any]], controls: Iterable[str] = (),
              n_boot: int = 1000, seed: int = 0) -> pd.DataFrame:
    """One row per (dataset, model, method, metric): value, interval, item counts, leader flags."""
    unknown = sorted(set(scores["metric"]) - set(metric_info))
    if unknown:
        raise ValueError(f"scores hold metrics without metric info: {', '.join(unknown)}")
    rows = []
    for key, group in scores.groupby(GROUP_COLUMNS, sort=True):
        info = metric_info[key[3]]
        raw = group["value"].to_numpy()
        map_finite = group["map_finite"].to_numpy() if "map_finite" in group else np.ones(raw.size, dtype=bool)
        nonfinite = ~map_finite | np.isinf(raw)
        scorable = np.isfinite(raw) & ~nonfinite
        values = raw[scorable]
        targets = group["target"].to_numpy()[scorable]
        _, low, high = bootstrap_interval(values, targets=targets, how=info["aggregate"], n_boot=n_boot,
                                          rng=group_rng(seed, key))
        rows.append({
            **dict(zip(GROUP_COLUMNS, key)), "aggregate": info["aggregate"],
            "higher_is_better": bool(info["higher_is_better"]), "value": aggregate(values, targets, info["aggregate"]),
            "ci_low": low, "ci_high": high, "n_items": int(values.size),
            "n_excluded": int((~scorable & ~nonfinite).sum()), "n_nonfinite": int(nonfinite.sum()),
            "n_classes": int(np.unique(targets).size),
        })
    return mark_leaders(pd.DataFrame(rows, columns=SUMMARY_COLUMNS[:-2]), set(controls))


def mark_leaders(summary: pd.DataFrame, controls: set[str]) -> pd.DataFrame:
    """Add ``best`` (best value of its (dataset, model, metric)) and ``beats_controls`` (vs the best control)."""
    summary = summary.copy()
    sign = np.where(summary["higher_is_better"], 1.0, -1.0)
    oriented = pd.Series(summary["value"].to_numpy() * sign, index=summary.index)  # larger = better
    cell = ["dataset", "model", "metric"]
    summary["best"] = (oriented == oriented.groupby([summary[c] for c in cell]).transform("max")).astype(bool)
    is_control = summary["method"].isin(controls)
    best_control = oriented.where(is_control).groupby([summary[c] for c in cell]).transform("max")
    beats = pd.array(oriented > best_control, dtype="boolean")
    beats[(is_control | best_control.isna() | oriented.isna()).to_numpy()] = pd.NA
    summary["beats_controls"] = beats
    return summary[SUMMARY_COLUMNS]


def metric_families(config: dict[str, Any], metric_info: dict[str, dict[str, Any]]) -> dict[str, str]:
    """Family of each metric (localisation, faithfulness, complexity, ...).

    A ``family`` in the metric's info wins; otherwise it is the module its registered metric lives in,
    read from the registry catalog (``metrics/faithfulness.py`` -> "faithfulness"); "other" if unknown.
    """
    from ..snapshot import load_catalog

    catalog = load_catalog()["metrics"]
    specs = config.get("metrics") or {}
    families = {}
    for name, info in metric_info.items():
        registered = (specs.get(name) or {}).get("metric", name)
        module = (catalog.get(registered) or {}).get("module", "")
        from_module = Path(module).stem if module.startswith("metrics/") else OTHER_FAMILY
        families[name] = str(info.get("family") or from_module)
    return families


def metric_order(families: dict[str, str]) -> list[str]:
    """Metric names grouped by family (:data:`FAMILY_ORDER` first, then others by name), by name within."""
    rank = {family: i for i, family in enumerate(FAMILY_ORDER)}
    return sorted(families, key=lambda m: (rank.get(families[m], len(rank)), families[m], m))


def control_methods(config: dict[str, Any], methods: Iterable[str]) -> set[str]:
    """Method ids whose registered method is a control baseline."""
    specs = config.get("methods", {})
    return {m for m in methods if (specs.get(m) or {}).get("method", m) in CONTROL_METHODS}


def method_order(methods: Iterable[str], controls: set[str]) -> list[str]:
    """Methods sorted by name, the controls last."""
    return sorted(set(methods), key=lambda m: (m in controls, m))


def runs_table(attrs: Iterable[dict[str, Any]]) -> pd.DataFrame:
    """One row per saliency job, from its maps store's attrs (provenance flattened)."""
    rows = []
    for a in attrs:
        prov = a.get("provenance") or {}
        versions = prov.get("versions") or {}
        rows.append({
            "dataset": str(a.get("dataset")), "model": str(a.get("model")), "method": str(a.get("method")),
            "method_name": str(a.get("method_name", a.get("method"))),
            "method_params": json.dumps(a.get("method_params", {}), sort_keys=True),
            "seed": a.get("seed"), "device": str(prov.get("device", a.get("device", "unknown"))),
            "host": str(prov.get("host", "unknown")), "git_revision": str(prov.get("git_revision", "unknown")),
            "salbench": str(versions.get("salbench", "unknown")), "torch": str(versions.get("torch", "unknown")),
            "python": str(prov.get("python", "unknown")), "runtime_s": float(a.get("runtime_s", float("nan"))),
            "checkpoint_sha256": str(a.get("checkpoint_sha256", "")),
            "data_manifest_sha256": str(a.get("data_manifest_sha256", "")),
        })
    runs = pd.DataFrame(rows, columns=RUN_COLUMNS)
    return runs.sort_values(["dataset", "model", "method"], kind="stable").reset_index(drop=True)


def runtime_by_method(runs: pd.DataFrame) -> pd.DataFrame:
    """Jobs, summed runtime and devices per method."""
    return (runs.groupby("method", sort=True)
            .agg(jobs=("runtime_s", "size"), runtime_s=("runtime_s", "sum"),
                 devices=("device", lambda d: ", ".join(sorted(set(d)))))
            .reset_index())
