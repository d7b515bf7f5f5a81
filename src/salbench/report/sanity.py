"""The report's sanity-check section: verdict matrix, cascade curves and the maps across cascade stages.

Reads the per-method sanity tables (``results/{dataset}/{model}/sanity/{method}.parquet``) and the cascade
map stores beside them; verdicts come from :mod:`salbench.sanity.verdicts` (torch-free), per data set and
model, with the controls of that data set and model validating each check.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from html import escape
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib import pyplot as plt
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from ..sanity.verdicts import CONTROLS, verdict_values, verdicts
from ..store import open_store, read_table
from .figures import CONTROL_COLOUR, RC, _save, _show_map

#: checks in the verdict matrix's column order, with what failing means
CHECK_MEANINGS = {
    "model_sensitivity": "maps change when the model's weights are randomised top-down (Adebayo et al. 2018)",
    "top_layer_sensitivity": "maps already change when only the top layers are randomised (guided backprop does not, "
                             "Adebayo et al. 2018)",
    "data_randomisation": "maps of a model trained on permuted labels differ from the real model's (Adebayo et al.)",
    "input_invariance": "a mean shift the model compensates exactly leaves the maps unchanged (Kindermans et al.)",
    "input_sensitivity": "maps of an image are closer to its noisy copy's than to another image's (input-agnostic test)",
    "class_sensitivity": "maps for the two classes of a two-object image differ (Sixt et al.; Rebuffi et al.)",
    "random_logit": "the map for a random other class differs from the target's (Sixt et al. 2020; Quantus)",
}


@dataclass(frozen=True)
class SanitySection:
    """What the page shows of the sanity checks; paths are relative to the report folder."""

    verdicts: pd.DataFrame
    curves_png: str | None
    grids: dict[tuple[str, str], str]
    verdicts_csv: str
    permuted_accuracy: dict[tuple[str, str], float]


def load_tables(paths: list[Path]) -> pd.DataFrame:
    """All sanity tables in one frame (empty with the right columns when there are none)."""
    frames = [read_table(p) for p in paths]
    columns = ["dataset", "model", "method", "check", "statistic", "stage", "stage_index", "item", "value"]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=columns)


def verdict_table(table: pd.DataFrame, config: dict[str, Any], n_boot: int, seed: int) -> pd.DataFrame:
    """One row per (dataset, model, method, check): the verdict with its bootstrap interval and trust."""
    sanity = config.get("sanity") or {}
    measure = sanity.get("measure", "spearman_abs")
    specs = config.get("methods", {})
    rows = []
    for (dataset, model), part in table.groupby(["dataset", "model"], sort=True):
        stats = {(method, check): values for method, by_method in part.groupby("method")
                 for check, values in verdict_values(by_method, measure, sanity.get("top_fraction", 0.5)).items()}
        controls = {method: CONTROLS[name] for method in part["method"].unique()
                    if (name := (specs.get(method) or {}).get("method", method)) in CONTROLS}
        for result in verdicts(stats, sanity.get("thresholds"), controls, n_boot=n_boot, seed=seed):
            rows.append({"dataset": dataset, "model": model, **result.as_row()})
    return pd.DataFrame(rows)


def cascade_curves(table: pd.DataFrame, measure: str, methods: list[str], controls: set[str], path: Path) -> Path | None:
    """Small multiples, one per method: mean similarity to the original map across the cascading stages,
    one line per (data set, model). Writes ``path`` (PNG + SVG); None when no cascade was run."""
    part = table[(table["check"] == "model_sensitivity") & (table["statistic"] == measure)]
    if part.empty:
        return None
    means = part.groupby(["dataset", "model", "method", "stage_index", "stage"], as_index=False)["value"].mean()
    shown = [m for m in methods if m in set(means["method"])]
    columns = min(6, len(shown))
    rows = math.ceil(len(shown) / columns)
    with plt.rc_context(RC):
        fig = Figure(figsize=(2.3 * columns, 1.9 * rows + 0.6))
        FigureCanvasAgg(fig)
        axes = fig.subplots(rows, columns, squeeze=False, sharex=True, sharey=True)
        for ax, method in zip(axes.flat, shown):
            for (dataset, model), line in means[means["method"] == method].groupby(["dataset", "model"]):
                line = line.sort_values("stage_index")
                ax.plot(line["stage_index"], line["value"], marker="o", markersize=2.5, label=f"{dataset}/{model}")
            ax.axhline(0, color="#bbb", linewidth=0.6)
            ax.set_title(method, fontsize=8, color=CONTROL_COLOUR if method in controls else "black",
                         fontstyle="italic" if method in controls else "normal")
            ax.set_ylim(-0.3, 1.05)
        for ax in axes.flat[len(shown):]:
            ax.set_visible(False)
        stages = means.drop_duplicates("stage_index").sort_values("stage_index")
        for ax in axes[-1]:
            ax.set_xticks(stages["stage_index"], stages["stage"], rotation=90, fontsize=6)
        fig.supylabel(f"{measure} to the original map", fontsize=8)
        handles, labels = axes.flat[0].get_legend_handles_labels()
        fig.legend(handles, labels, loc="upper center", ncol=max(1, len(labels)), fontsize=7, frameon=False)
        fig.tight_layout(rect=(0, 0, 1, 1 - 0.35 / (1.9 * rows + 0.6)))
        _save(fig, path, ("png", "svg"))
    return path.with_suffix(".png")


def cascade_grid(stores: list[Path], methods: list[str], controls: set[str], path: Path) -> Path | None:
    """Maps of the first item across the cascading stages (columns), one row per method, from the cascade
    stores of one (data set, model). Each map is scaled by its own maximum absolute value."""
    by_method = {}
    for store in stores:
        ds = open_store(store)
        by_method[ds.attrs["method"]] = (list(ds["stage"].values), ds["saliency"].values[:, 0])
    shown = [m for m in methods if m in by_method]
    if not shown:
        return None
    stages = by_method[shown[0]][0]
    with plt.rc_context(RC):
        fig = Figure(figsize=(1.2 * len(stages) + 1.4, 1.2 * len(shown) + 0.6))
        FigureCanvasAgg(fig)
        axes = fig.subplots(len(shown), len(stages), squeeze=False, gridspec_kw={"wspace": 0.04, "hspace": 0.06})
        for i, method in enumerate(shown):
            maps = by_method[method][1]
            for j in range(len(stages)):
                _show_map(axes[i, j], maps[j], signed=bool((maps < 0).any()))
                axes[i, j].set_xticks([])
                axes[i, j].set_yticks([])
            axes[i, 0].set_ylabel(method, fontsize=7, rotation=0, ha="right", va="center",
                                  color=CONTROL_COLOUR if method in controls else "black")
        for j, stage in enumerate(stages):
            axes[0, j].set_title(str(stage), fontsize=7)
        _save(fig, path, ("png",))
    return path.with_suffix(".png")


def permuted_accuracy(stores: list[Path]) -> dict[tuple[str, str], float]:
    """Training accuracy of each (data set, model)'s permuted-label model, from the cascade stores' attrs."""
    out = {}
    for store in stores:
        attrs = open_store(store).attrs
        if attrs.get("permuted_train_accuracy") is not None:
            out[(attrs["dataset"], attrs["model"])] = float(attrs["permuted_train_accuracy"])
    return out


def render(section: SanitySection | None, methods: list[str], controls: set[str], fmt) -> str:
    """The HTML of the sanity-check section."""
    parts = ['<section id="sanity">', "<h2>Sanity checks</h2>"]
    if section is None or section.verdicts.empty:
        return "\n".join([*parts, "<p>No sanity checks were configured.</p>", "</section>"])
    parts.append(
        '<div class="explain"><p><strong>What it shows.</strong> Whether each method\'s maps depend on what they '
        "claim to explain. Each cell is a verdict (pass/fail) on the mean of a per-item statistic with its 95% "
        "bootstrap interval; a verdict whose interval crosses the threshold is marked uncertain (?). Checks:</p><ul>"
        + "".join(f"<li><code>{escape(c)}</code>: {escape(m)}</li>" for c, m in CHECK_MEANINGS.items())
        + "</ul><p><strong>How to read it.</strong> The controls validate the checks: the Sobel edge map "
        "ignores the model, so it must fail model sensitivity; the centre prior ignores the input, so it must fail "
        "input sensitivity. When a control passes a check it must fail, that check's column is marked "
        "<em>not trustworthy</em> and its verdicts should not be believed. Passing a randomisation check is a "
        "necessary condition only (Binder et al., CVPR 2023).</p></div>")
    for (dataset, model), part in section.verdicts.groupby(["dataset", "model"], sort=True):
        checks = [c for c in [*CHECK_MEANINGS, *sorted(set(part["check"]) - set(CHECK_MEANINGS))]
                  if c in set(part["check"])]
        header = []
        for check in checks:
            trust = part[part["check"] == check]["trustworthy"].iloc[0]
            mark = {True: " (validated)", False: " \u26a0 not trustworthy", None: ""}.get(
                None if pd.isna(trust) else bool(trust), "")
            header.append(f"<th>{escape(check)}<br><span class=\"weak\">{escape(mark)}</span></th>")
        body = []
        for method in [m for m in methods if m in set(part["method"])]:
            cells = []
            for check in checks:
                row = part[(part["method"] == method) & (part["check"] == check)]
                if row.empty:
                    cells.append("<td></td>")
                    continue
                r = row.iloc[0]
                verdict = ("pass" if r["passed"] else "fail") + ("" if r["decisive"] else " ?")
                colour = "#1a7f37" if r["passed"] else "#b42318"
                cells.append(f'<td class="num" title="{escape(str(r["note"]))}"><strong style="color:{colour}">'
                             f'{verdict}</strong><br>{fmt(r["value"])} <span class="ci">[{fmt(r["ci_low"])}, '
                             f'{fmt(r["ci_high"])}]</span></td>')
            label = f"<em>{escape(method)}</em>" if method in controls else escape(method)
            body.append(f"<tr><th>{label}</th>{''.join(cells)}</tr>")
        accuracy = section.permuted_accuracy.get((dataset, model))
        note = (f"<p>Permuted-label model for data randomisation: training accuracy {accuracy:.3f} "
                "(it memorised random labels).</p>" if accuracy is not None else "")
        parts += [f"<h3>{escape(dataset)} / {escape(model)}</h3>", note, '<div class="scroll"><table class="board">',
                  f"<tr><th>method</th>{''.join(header)}</tr>", *body, "</table></div>"]
    parts.append(f'<p>Thresholds and statistics per check: <a href="{escape(section.verdicts_csv)}">'
                 f"{escape(section.verdicts_csv)}</a>.</p>")
    if section.curves_png:
        parts += ["<h3>Cascading randomisation curves</h3>",
                  "<p>Mean similarity of each stage's map to the original map (stage 0) as the weights are "
                  "re-initialised from the logits down to the input. A curve that falls to zero passes; one "
                  "that stays high means the map does not depend on the learned weights.</p>",
                  f'<img src="{escape(section.curves_png)}" alt="similarity to the original map per cascade stage">']
    for (dataset, model), src in sorted(section.grids.items()):
        parts += [f"<h3>Maps across cascade stages: {escape(dataset)} / {escape(model)}</h3>",
                  f'<img src="{escape(src)}" alt="maps of the first item across the cascade stages">']
    parts.append("</section>")
    return "\n".join(parts)
