"""The report's sanity-check section: verdict matrix, controls self-test, cascade curves and the maps across
cascade stages.

Reads the per-method sanity tables (``results/{dataset}/{model}/sanity/{method}.parquet``) and the cascade
map stores beside them; the checks, their meanings and rules come from the check registry
(:mod:`salbench.sanity.checks`), verdicts from :mod:`salbench.sanity.verdicts` (both torch-free), per data set
and model, with the controls of that data set and model validating each check and the study's ``noisy``
methods testing whether a check rewards noise.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib import pyplot as plt
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from ..sanity.checks import CHECKS, ORDERS, Check, cascade_rows, controls as check_controls
from ..sanity.checks.base import STAGES
from ..sanity.verdicts import verdict_values, verdicts
from ..snapshot import load_catalog
from ..store import open_store, read_table
from .figures import CONTROL_COLOUR, RC, _save, map_colours
from .mosaic import Cell, Row, map_picture, mosaic_figure



def _column_key(check: Check) -> tuple[Any, ...]:
    """Model-level checks before class checks; families (checks sharing a computation) first, in stage order."""
    family = sum(entry.obj.compute is check.compute for entry in CHECKS.entries())
    return check.objects, -family, STAGES.index(check.stage), check.rows, check.name


def check_meanings() -> dict[str, str]:
    """The registered checks (plugins registered since import included) in the verdict matrix's column order,
    with what passing means."""
    return {check.name: check.description for check in sorted((e.obj for e in CHECKS.entries()), key=_column_key)}


#: :func:`check_meanings` of the checks registered at import (built-in and installed plugins)
CHECK_MEANINGS = check_meanings()
#: the registered method a noise-trap variant wraps its base in (``noisy``), and the random-noise control
NOISY_METHOD, RANDOM_CONTROL = "noisy", "random"
TICK, CROSS = "\u2713", "\u2717"
#: line style of each cascade order in the curves
ORDER_STYLE = dict(zip(ORDERS, ("-", "--")))


def load_tables(paths: list[Path]) -> pd.DataFrame:
    """All sanity tables in one frame (empty with the right columns when there are none)."""
    frames = [read_table(p) for p in paths]
    columns = ["dataset", "model", "method", "check", "statistic", "stage", "stage_index", "item", "value"]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=columns)


def noisy_pairs(config: dict[str, Any], methods: Any) -> dict[str, str]:
    """Noisy method id -> the id of the clean method it adds noise to, among ``methods``: a ``noisy`` entry whose
    ``base`` and ``base_params`` are another entry's registered method and params (both over the registered
    defaults of the catalog snapshot)."""
    specs = {m: config.get("methods", {}).get(m) or {} for m in methods}
    catalog = load_catalog()["methods"]

    def registered(method: str) -> str:
        return specs[method].get("method", method)

    def resolved(name: str, params: dict[str, Any]) -> dict[str, Any]:
        return {**(catalog.get(name) or {}).get("params", {}), **params}

    pairs = {}
    for method in sorted(specs):
        if registered(method) != NOISY_METHOD:
            continue
        params = resolved(NOISY_METHOD, specs[method].get("params") or {})
        base, base_params = params["base"], resolved(params["base"], params["base_params"])
        clean = [m for m in sorted(specs) if registered(m) == base
                 and resolved(base, specs[m].get("params") or {}) == base_params]
        if clean:
            pairs[method] = clean[0]
    return pairs


def verdict_table(table: pd.DataFrame, config: dict[str, Any], n_boot: int, seed: int) -> pd.DataFrame:
    """One row per (dataset, model, method, check): the verdict with its bootstrap interval, trust and noise trap,
    and the method's registered name (``method_name``: the self-test finds the random control by it)."""
    sanity = config.get("sanity") or {}
    for name in sanity.get("checks", []):  # the study's check plugins register on first use: the verdicts read them
        CHECKS.get(name)
    measure = sanity.get("measure", "spearman_abs")
    specs = config.get("methods", {})
    registered = check_controls()
    rows = []
    for (dataset, model), part in table.groupby(["dataset", "model"], sort=True):
        stats = {(method, check): values for method, by_method in part.groupby("method")
                 for check, values in verdict_values(by_method, measure, sanity.get("top_fraction", 0.5)).items()}
        names = {method: (specs.get(method) or {}).get("method", method) for method in part["method"].unique()}
        controls = {method: registered[name] for method, name in names.items() if name in registered}
        for result in verdicts(stats, sanity.get("thresholds"), controls, n_boot=n_boot, seed=seed,
                               noisy_pairs=noisy_pairs(config, names)):
            rows.append({"dataset": dataset, "model": model, **result.as_row(), "method_name": names[result.method]})
    return pd.DataFrame(rows)


def cascade_curves(table: pd.DataFrame, measure: str, methods: list[str], controls: set[str], path: Path) -> Path | None:
    """Small multiples, one per method: mean similarity to the original map across the cascading stages, one
    colour per (data set, model), one line style per layer order (top-down solid, bottom-up dashed). A tick
    names the stage of each order (``top-down / bottom-up``). Writes ``path`` (PNG + SVG); None when no
    cascade was run."""
    order_of = {cascade_rows("cascading", order): order for order in ORDERS}
    part = table[table["check"].isin(list(order_of)) & (table["statistic"] == measure)]
    if part.empty:
        return None
    part = part.assign(order=part["check"].map(order_of))
    keys = ["dataset", "model", "method", "order", "stage_index", "stage"]
    means = part.groupby(keys, as_index=False)["value"].mean()
    orders = [order for order in ORDERS if order in set(means["order"])]
    pairs = sorted({(d, m) for d, m in zip(means["dataset"], means["model"])})
    colours = {pair: f"C{k}" for k, pair in enumerate(pairs)}
    shown = [m for m in methods if m in set(means["method"])]
    columns = min(6, len(shown))
    rows = math.ceil(len(shown) / columns)
    with plt.rc_context(RC):
        fig = Figure(figsize=(2.3 * columns, 1.9 * rows + 0.6))
        FigureCanvasAgg(fig)
        axes = fig.subplots(rows, columns, squeeze=False, sharex=True, sharey=True)
        for ax, method in zip(axes.flat, shown):
            lines = means[means["method"] == method].groupby(["dataset", "model", "order"])
            for (dataset, model, order), line in lines:
                line = line.sort_values("stage_index")
                ax.plot(line["stage_index"], line["value"], marker="o", markersize=2.5, color=colours[(dataset, model)],
                        linestyle=ORDER_STYLE[order])
            ax.axhline(0, color="#bbb", linewidth=0.6)
            ax.set_title(method, fontsize=8, color=CONTROL_COLOUR if method in controls else "black",
                         fontstyle="italic" if method in controls else "normal")
            ax.set_ylim(-0.3, 1.05)
        for ax in axes.flat[len(shown):]:
            ax.set_visible(False)
        ticks = {}
        for order in orders:
            for index, stage in means[means["order"] == order].drop_duplicates("stage_index")[
                    ["stage_index", "stage"]].itertuples(index=False):
                ticks.setdefault(int(index), []).append(str(stage))
        for ax in axes[-1]:
            ax.set_xticks(sorted(ticks), [" / ".join(dict.fromkeys(ticks[k])) for k in sorted(ticks)], rotation=90,
                          fontsize=6)
        fig.supylabel(f"{measure} to the original map", fontsize=8)
        handles = [Line2D([], [], color=colours[pair], marker="o", markersize=2.5) for pair in pairs]
        handles += [Line2D([], [], color="0.3", linestyle=ORDER_STYLE[order]) for order in orders]
        labels = [f"{d}/{m}" for d, m in pairs] + [order.replace("_", "-") for order in orders]
        fig.legend(handles, labels, loc="upper center", ncol=max(1, len(labels)), fontsize=7, frameon=False)
        fig.tight_layout(rect=(0, 0, 1, 1 - 0.35 / (1.9 * rows + 0.6)))
        _save(fig, path, ("png", "svg"))
    return path.with_suffix(".png")


def order_rows(stages: list[str], maps: np.ndarray, first: str = ORDERS[0]) -> list[tuple[str, list[str], np.ndarray]]:
    """Split a cascade store's stages into one ``(order, stage names, maps)`` per layer order: the ``first``
    order's stages are plain names, each later order's are ``"<order>:<stage>"`` and share the first's original."""
    orders: dict[str, list[int]] = {}
    for k, stage in enumerate(stages):
        order = str(stage).rpartition(":")[0] or first
        orders.setdefault(order, [] if order == first else [0]).append(k)
    return [(order, [str(stages[k]).rpartition(":")[2] for k in index], maps[index])
            for order, index in orders.items()]


def cascade_grid(stores: list[Path], methods: list[str], controls: set[str], path: Path) -> Path | None:
    """Maps of the first item across the cascading stages (columns), one row per method and layer order (a
    later order's row is labelled with it), from the cascade stores of one (data set, model). Each map is
    scaled by its own maximum absolute value."""
    rows = []
    for store in stores:
        ds = open_store(store)
        first = ((ds.attrs.get("settings") or {}).get("orders") or ORDERS)[0]
        split = order_rows(list(ds["stage"].values), ds["saliency"].values[:, 0], first)
        for order, stages, maps in split:
            shown_order = order if len(split) > 1 or order != ORDERS[0] else ""
            rows.append((ds.attrs["method"], shown_order, stages, maps))
    rank = {m: k for k, m in enumerate(methods)}
    rows = sorted((row for row in rows if row[0] in rank), key=lambda row: rank[row[0]])
    if not rows:
        return None
    mosaic = []
    for method, order, stages, maps in rows:
        signed = bool((maps < 0).any())
        label = method if not order else f"{method}\n{order.replace('_', '-')}"
        cells = [Cell(map_picture(saliency, map_colours(saliency, signed)), title=stage)
                 for stage, saliency in zip(stages, maps)]
        mosaic.append(Row(label, cells, {"color": CONTROL_COLOUR if method in controls else "black"}))
    with plt.rc_context(RC):
        _save(mosaic_figure(mosaic, cell_inches=1.0), path, ("png",))
    return path.with_suffix(".png")


def permuted_accuracy(stores: list[Path]) -> dict[tuple[str, str], float]:
    """Training accuracy of each (data set, model)'s permuted-label model, from the cascade stores' attrs."""
    out = {}
    for store in stores:
        attrs = open_store(store).attrs
        if attrs.get("permuted_train_accuracy") is not None:
            out[(attrs["dataset"], attrs["model"])] = float(attrs["permuted_train_accuracy"])
    return out


def _flag(value: Any) -> bool | None:
    """A table's True/False/missing flag as a bool or None."""
    return None if value is None or (isinstance(value, float) and math.isnan(value)) or pd.isna(value) else bool(value)


def self_test_rows(part: pd.DataFrame, checks: list[str]) -> list[dict[str, Any]]:
    """The controls self-test of one (data set, model), per check: the controls that must fail it and their
    verdicts, the random-noise control's verdict, the noise trap (noisy vs clean maps) and the conclusion."""
    names = part["method_name"] if "method_name" in part else part["method"]
    out = []
    for check in checks:
        rows = part[part["check"] == check]
        must_fail = {control for control, failed in check_controls().items() if check in failed}
        controls, random, traps = [], [], []
        for index, r in rows.iterrows():
            if names.loc[index] in must_fail:
                controls.append({"method": str(r["method"]), "passed": bool(r["passed"])})
            if names.loc[index] == RANDOM_CONTROL:
                random.append({"method": str(r["method"]), "passed": bool(r["passed"]), "value": float(r["value"])})
            if isinstance(r.get("clean_method"), str) and r["clean_method"]:
                traps.append({"noisy": str(r["method"]), "clean": str(r["clean_method"]),
                              "gain": float(r["noise_gain"]), "ci_low": float(r["noise_ci_low"]),
                              "ci_high": float(r["noise_ci_high"])})
        first = rows.iloc[0]
        trusted, noise = _flag(first["trustworthy"]), _flag(first.get("rewards_noise"))
        passed_by_noise = bool(rows["passed"][names.loc[rows.index] == RANDOM_CONTROL].any())
        conclusion = ("not trustworthy: a control passes it" if trusted is False else
                      "rewards noise: a noisy map scores better than its clean original" if noise else
                      "pure noise passes it: a necessary condition, not a sufficient one" if passed_by_noise else
                      "validated by its controls" if trusted else "no control validates it")
        out.append({"check": check, "controls": controls, "random": random, "traps": traps,
                    "conclusion": conclusion})
    return out


def verdict_matrices(verdicts: pd.DataFrame, methods: list[str], controls: set[str],
                     accuracy: dict[tuple[str, str], float]) -> list[dict[str, Any]]:
    """Per (data set, model): the checks (columns, registry order) with their trust, one row per method (the
    report's order) with a cell per check (None where it did not run), the permuted-label model's training
    accuracy and the controls self-test."""
    meanings = check_meanings()
    out = []
    for (dataset, model), part in verdicts.groupby(["dataset", "model"], sort=True):
        ran = set(part["check"])
        checks = [c for c in [*meanings, *sorted(ran - set(meanings))] if c in ran]
        columns = []
        for check in checks:
            first = part[part["check"] == check].iloc[0]
            columns.append({"check": check, "trustworthy": _flag(first["trustworthy"]),
                            "rewards_noise": bool(_flag(first.get("rewards_noise")))})
        cells = {(r["method"], r["check"]): r for _, r in part.iterrows()}
        rows = []
        for method in [m for m in methods if m in set(part["method"])]:
            rows.append({"method": method, "control": method in controls,
                         "cells": [_cell(cells[(method, c)]) if (method, c) in cells else None for c in checks]})
        out.append({"dataset": str(dataset), "model": str(model), "checks": columns, "rows": rows,
                    "permuted_accuracy": accuracy.get((dataset, model)), "self_test": self_test_rows(part, checks)})
    return out


def _cell(row: pd.Series) -> dict[str, Any]:
    """One verdict as the matrix shows it."""
    return {"passed": bool(row["passed"]), "decisive": bool(row["decisive"]), "value": float(row["value"]),
            "ci_low": float(row["ci_low"]), "ci_high": float(row["ci_high"]), "note": str(row.get("note", ""))}


def verdicts_by_method(verdicts: pd.DataFrame) -> dict[str, list[dict[str, Any]]]:
    """Each method's verdicts (data set, model, check, pass/fail, decisive, value and interval, trust)."""
    out: dict[str, list[dict[str, Any]]] = {}
    for _, r in verdicts.sort_values(["dataset", "model", "check"], kind="stable").iterrows():
        out.setdefault(str(r["method"]), []).append(
            {"dataset": str(r["dataset"]), "model": str(r["model"]), "check": str(r["check"]),
             "trustworthy": _flag(r["trustworthy"]), **_cell(r)})
    return out
