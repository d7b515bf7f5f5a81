"""Build the study report: aggregate the scores, draw the figures, write the static HTML folder.

The folder (``index.html`` + ``figures/``) is written to a temporary sibling and renamed into place,
so a killed job never leaves a half report. Aggregated tables go to ``tables_dir``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from ..store import atomic_path, open_store
from . import figures, html, ranks, sanity, tables

DEFAULT_EXAMPLES = 6
DEFAULT_BOOTSTRAP = 1000


@dataclass(frozen=True)
class ExampleItems:
    """The first K items of a data store, as the example grids show them."""

    ids: list[str]
    images: np.ndarray
    masks: np.ndarray | None
    labels: list[str]
    manifest_sha256: str


def build_report(*, study: str, config: dict[str, Any], score_files: list[Path], map_stores: list[Path],
                 data_stores: dict[str, Path], out_dir: Path, tables_dir: Path,
                 metric_info: dict[str, dict[str, Any]], sanity_files: list[Path] = (),
                 cascade_stores: list[Path] = ()) -> Path:
    """Write the tables and the report folder; return its index.html.

    ``tables_dir`` gets ``scores.parquet``, ``summary.parquet`` + ``summary.csv`` (value and interval per
    dataset, model, method and metric), ``ranks.csv`` (rank with its paired-bootstrap distribution) and
    ``rank_agreement.csv`` (Kendall tau between metrics) and, with sanity tables, ``sanity_verdicts.csv``;
    the report folder links copies of the CSVs.
    """
    out_dir, tables_dir = Path(out_dir), Path(tables_dir)
    options = config.get("report") or {}
    n_examples = int(options.get("examples", DEFAULT_EXAMPLES))
    n_boot = int(options.get("bootstrap", DEFAULT_BOOTSTRAP))
    seed = int(config.get("seed", 0))

    scores = tables.load_scores(score_files)
    items = {name: _example_items(path, n_examples) for name, path in sorted(data_stores.items())}
    runs, columns = _read_maps(map_stores, items)
    all_methods = set(scores["method"]) | set(runs["method"])
    controls = tables.control_methods(config, all_methods)
    methods = tables.method_order(all_methods, controls)
    summary = tables.summarise(scores, metric_info, controls, n_boot=n_boot, seed=seed)
    families = tables.metric_families(config, metric_info)
    metrics = tables.metric_order({m: families[m] for m in set(summary["metric"])})
    rank_table = ranks.method_ranks(scores, metric_info, n_boot=n_boot, seed=seed)
    agreement = ranks.rank_agreement(summary, metrics)
    csv_tables = {"summary.csv": summary, "ranks.csv": rank_table, "rank_agreement.csv": agreement}
    sanity_table = sanity.load_tables(list(sanity_files))
    verdicts = sanity.verdict_table(sanity_table, config, n_boot, seed)
    if not verdicts.empty:
        csv_tables["sanity_verdicts.csv"] = verdicts
    _write_table(scores, tables_dir / "scores.parquet")
    _write_table(summary, tables_dir / "summary.parquet")
    for name, frame in csv_tables.items():
        _write_table(frame, tables_dir / name)

    with atomic_path(out_dir) as tmp:
        figures.metrics_figure(summary, methods, controls, tmp / "figures" / "metrics.png", metrics)
        figures.ranks_figure(rank_table, metrics, families, controls, tmp / "figures" / "ranks.png")
        figures.rank_agreement_figure(agreement, metrics, families, tmp / "figures" / "rank_agreement.png")
        examples = {}
        for (dataset, model), by_method in sorted(columns.items()):
            name = f"figures/examples_{dataset}_{model}.png"
            grid = [figures.MapColumn(m, by_method[m][0], by_method[m][1], m in controls) for m in methods
                    if m in by_method]
            figures.example_grid(items[dataset].images, items[dataset].masks, items[dataset].labels, grid, tmp / name)
            examples[(dataset, model)] = name
        for name, frame in csv_tables.items():
            frame.to_csv(tmp / name, index=False)
        section = _sanity_section(sanity_table, verdicts, list(cascade_stores), config, methods, controls, tmp)
        config_yaml = yaml.safe_dump(config, sort_keys=False, default_flow_style=False, allow_unicode=True)
        page = html.Page(
            study=study, provenance=_provenance(runs, items, n_boot, seed), runtimes=tables.runtime_by_method(runs),
            runs=runs, config_yaml=config_yaml,
            summary=summary, metric_info=metric_info, methods=methods, controls=controls,
            ranks=rank_table, families=families, metrics=metrics,
            metrics_png="figures/metrics.png", metrics_svg="figures/metrics.svg", summary_csv="summary.csv",
            ranks_csv="ranks.csv", agreement_csv="rank_agreement.csv",
            ranks_png="figures/ranks.png", ranks_svg="figures/ranks.svg",
            agreement_png="figures/rank_agreement.png", agreement_svg="figures/rank_agreement.svg",
            examples=examples, n_examples=n_examples, sanity=section,
        )
        (tmp / "index.html").write_text(html.render(page), encoding="utf-8")
    return out_dir / "index.html"


def _sanity_section(table: pd.DataFrame, verdicts: pd.DataFrame, cascades: list[Path], config: dict[str, Any],
                    methods: list[str], controls: set[str], folder: Path) -> sanity.SanitySection | None:
    """Draw the sanity figures into ``folder``; None when no sanity checks ran."""
    if verdicts.empty:
        return None
    measure = (config.get("sanity") or {}).get("measure", "spearman_abs")
    curves = sanity.cascade_curves(table, measure, methods, controls, folder / "figures" / "sanity_cascade.png")
    by_pair: dict[tuple[str, str], list[Path]] = {}
    for store in cascades:  # results/{dataset}/{model}/sanity/{method}.zarr
        by_pair.setdefault((store.parents[2].name, store.parents[1].name), []).append(store)
    grids = {}
    for (dataset, model), stores in sorted(by_pair.items()):
        name = f"figures/sanity_stages_{dataset}_{model}.png"
        if sanity.cascade_grid(stores, methods, controls, folder / name):
            grids[(dataset, model)] = name
    return sanity.SanitySection(verdicts=verdicts, curves_png="figures/sanity_cascade.png" if curves else None,
                                grids=grids, verdicts_csv="sanity_verdicts.csv",
                                permuted_accuracy=sanity.permuted_accuracy(cascades))


def _example_items(path: Path, k: int) -> ExampleItems:
    """Read the first ``k`` items of a data store (images, masks, ids, class names)."""
    ds = open_store(path)
    k = min(k, ds.sizes["item"])
    classes = list(ds.attrs.get("classes", []))
    targets = ds["target"].values[:k].astype(int)
    ids = [str(i) for i in ds["item"].values[:k]]
    has_masks = "mask" in ds and ds.attrs.get("has_masks", True)
    return ExampleItems(
        ids=ids, images=ds["image"].values[:k], masks=ds["mask"].values[:k] if has_masks else None,
        labels=[f"{i}\n{classes[t] if 0 <= t < len(classes) else t}" for i, t in zip(ids, targets)],
        manifest_sha256=str(ds.attrs.get("manifest_sha256", "unknown")),
    )


def _read_maps(paths: list[Path], items: dict[str, ExampleItems]
               ) -> tuple[pd.DataFrame, dict[tuple[str, str], dict[str, tuple[np.ndarray, bool]]]]:
    """Provenance rows of every maps store, and per (dataset, model) each method's example maps and signedness."""
    attrs, columns = [], {}
    for path in paths:
        ds = open_store(path)
        dataset, model, method = (str(ds.attrs[k]) for k in ("dataset", "model", "method"))
        if dataset not in items:
            raise ValueError(f"maps store {path} is for data set {dataset!r}, which has no data store")
        wanted = items[dataset].ids
        missing = sorted(set(wanted) - {str(i) for i in ds["item"].values})
        if missing:
            raise ValueError(f"maps store {path} lacks example items {', '.join(missing)}")
        saliency = ds["saliency"]
        signed = bool(np.nanmin(saliency.values) < 0) if saliency.size else False
        maps = saliency.sel(item=np.asarray(wanted, dtype=object)).values
        columns.setdefault((dataset, model), {})[method] = (maps, signed)
        attrs.append(dict(ds.attrs))
    return tables.runs_table(attrs), columns


def _provenance(runs: pd.DataFrame, items: dict[str, ExampleItems], n_boot: int, seed: int) -> list[tuple[str, str]]:
    """(field, value) rows of the overview; several distinct values are all listed."""

    def distinct(column: str) -> str:
        return ", ".join(sorted({str(v) for v in runs[column]})) or "unknown"

    return [
        ("salbench", distinct("salbench")), ("torch", distinct("torch")), ("python", distinct("python")),
        ("git revision", distinct("git_revision")), ("seeds", distinct("seed")), ("devices", distinct("device")),
        ("hosts", distinct("host")),
        ("data manifests (sha256)", ", ".join(f"{d}: {i.manifest_sha256[:12]}" for d, i in items.items())),
        ("bootstrap", f"{n_boot} resamples of items, seed {seed}, 95% percentile interval; ranks: the same "
                      "resample of items for every method (paired)"),
    ]


def _write_table(frame: pd.DataFrame, path: Path) -> None:
    """Write a parquet or CSV table atomically."""
    with atomic_path(path) as tmp:
        if path.suffix == ".csv":
            frame.to_csv(tmp, index=False)
        else:
            frame.to_parquet(tmp, index=False)
