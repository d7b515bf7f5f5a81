"""Build the study report: aggregate the scores, draw the figures, write the static HTML folder.

The folder (``index.html`` + ``figures/``) is written to a temporary sibling and renamed into place,
so a killed job never leaves a half report. Aggregated tables go to ``tables_dir``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from ..config import load_catalog
from ..store import atomic_path, open_store
from . import agreement as implementation
from . import claims, fidelity, figures, galleries, html, layerwise, meta, ranks, sanity, tables
from . import curves as curve_figures
from . import grid_examples

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
    #: image and mask (None without masks) of further items by id (the galleries' items)
    extra: dict[str, tuple[np.ndarray, np.ndarray | None]] = field(default_factory=dict)


def build_report(*, study: str, config: dict[str, Any], score_files: list[Path], map_stores: list[Path],
                 data_stores: dict[str, Path], out_dir: Path, tables_dir: Path,
                 metric_info: dict[str, dict[str, Any]], sanity_files: list[Path] = (),
                 cascade_stores: list[Path] = (), claims_file: Path | None = None,
                 layerwise_stores: list[Path] = (), layerwise_labels: Path | None = None,
                 checkpoints: dict[tuple[str, str], Path] | None = None, curve_files: list[Path] = (),
                 grid_map_stores: list[Path] = (), fidelity_file: Path | None = None,
                 meta_tables: list[Path] = ()) -> Path:
    """Write the tables and the report folder; return its index.html.

    ``tables_dir`` gets ``scores.parquet``, ``summary.parquet`` + ``summary.csv`` (value and interval per
    dataset, model, method and metric), ``ranks.csv`` (rank with its paired-bootstrap distribution) and
    ``rank_agreement.csv`` (Kendall tau between metrics) and, with sanity tables, ``sanity_verdicts.csv``;
    with claims (``claims_file`` and the config's ``references``), ``claims.csv``; with curves (``curve_files``,
    the score jobs' curves tables), ``curves.csv`` (mean curve and band per point); the report folder links
    copies of the CSVs. ``grid_map_stores`` (the grid localisation jobs' kept maps) give one grid examples
    figure per (data set, model), ``figures/grid_examples_{dataset}_{model}.png`` + ``.svg``. ``fidelity_file``
    (``docs/fidelity.md``) gives the methods section: each seed method's reference code and its differences;
    ``meta_tables`` (the meta-evaluation jobs' tables) the section on how far to trust each metric.
    """
    out_dir, tables_dir = Path(out_dir), Path(tables_dir)
    options = config.get("report") or {}
    n_examples = int(options.get("examples", DEFAULT_EXAMPLES))
    n_boot = int(options.get("bootstrap", DEFAULT_BOOTSTRAP))
    seed = int(config.get("seed", 0))

    scores = tables.load_scores(score_files)
    skipped = skipped_metrics(score_files)
    families = tables.metric_families(config, metric_info)
    metrics = tables.metric_order({m: families[m] for m in set(scores["metric"])})
    gallery_metric = galleries.gallery_metric(options, metrics, families)
    picks = (galleries.select(scores, gallery_metric, bool(metric_info[gallery_metric]["higher_is_better"]),
                              int(options.get("gallery_items", galleries.DEFAULT_PER_SIDE)))
             if gallery_metric else {})
    wanted: dict[str, set[str]] = {}
    for (dataset, _, _), pick in picks.items():
        wanted.setdefault(dataset, set()).update(pick.best + pick.worst)
    items = {name: _example_items(path, n_examples, wanted.get(name, set())) for name, path in sorted(data_stores.items())}
    runs, columns, gallery_maps = _read_maps(map_stores, items, picks)
    all_methods = set(scores["method"]) | set(runs["method"])
    controls = tables.control_methods(config, all_methods)
    methods = tables.method_order(all_methods, controls)
    summary = tables.summarise(scores, metric_info, controls, n_boot=n_boot, seed=seed)
    rank_table = ranks.method_ranks(scores, metric_info, n_boot=n_boot, seed=seed)
    agreement = ranks.rank_agreement(summary, metrics)
    csv_tables = {"summary.csv": summary, "ranks.csv": rank_table, "rank_agreement.csv": agreement}
    curve_summary = curve_figures.curve_summary(curve_figures.load_curves(curve_files), n_boot, seed)
    if not curve_summary.empty:
        csv_tables["curves.csv"] = curve_summary
    sanity_table = sanity.load_tables(list(sanity_files))
    verdicts = sanity.verdict_table(sanity_table, config, n_boot, seed)
    if not verdicts.empty:
        csv_tables["sanity_verdicts.csv"] = verdicts
    claim_list = claims.reference_claims(config)
    if claims_file is not None:
        claim_list += claims.load_claims(claims_file, load_catalog())
    claim_table = None
    if claim_list or claims_file is not None:
        claim_table = claims.evaluate(claim_list, claims.Tables(config=config, scores=scores, summary=summary,
                                                                verdicts=verdicts, metric_info=metric_info,
                                                                n_boot=n_boot, seed=seed), load_catalog())
        csv_tables["claims.csv"] = claim_table
    tables.write_frame(scores, tables_dir / "scores.parquet")
    tables.write_frame(summary, tables_dir / "summary.parquet")
    for name, frame in csv_tables.items():
        tables.write_frame(frame, tables_dir / name)

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
        gallery_figures = _galleries(picks, gallery_maps, items, methods, controls, gallery_metric, tmp)
        curve_section = curve_figures.build_section(curve_summary, metrics, methods, controls, metric_info, tmp,
                                                    "curves.csv")
        grid_section = grid_examples.section(list(grid_map_stores), methods, controls, tmp)
        layerwise_html = layerwise.section(list(layerwise_stores), layerwise_labels, data_stores, tmp)
        library_variants = implementation.build_section(map_stores, scores, tmp, checkpoints, data_stores)
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
            claims=claims.ClaimsSection(claim_table, _shown_path(claims_file), "claims.csv")
            if claim_table is not None else None,
            galleries=gallery_figures, gallery_metric=gallery_metric, layerwise=layerwise_html,
            implementation=library_variants, skipped=skipped, curves=curve_section, grid_examples=grid_section,
            fidelity=fidelity.read_fidelity(fidelity_file) if fidelity_file is not None else None,
            meta=meta.load_section(list(meta_tables)),
        )
        (tmp / "index.html").write_text(html.render(page), encoding="utf-8")
    return out_dir / "index.html"


#: the score table's column of skipped metrics (``salbench.jobs.SKIPPED_COLUMN``; not imported: jobs loads torch)
SKIPPED_COLUMN = "skipped_metrics"


def skipped_metrics(score_files: list[Path]) -> list[tuple[str, str, str, str]]:
    """Sorted unique ``(dataset, model, metric, reason)`` of the metrics score jobs skipped (their tables'
    ``skipped_metrics`` column, JSON ``{metric: reason}``; tables without it skipped nothing)."""
    from ..store import read_table

    found = set()
    for path in score_files:
        frame = read_table(path)
        if SKIPPED_COLUMN not in frame.columns:
            continue
        for dataset, model, text in frame[["dataset", "model", SKIPPED_COLUMN]].drop_duplicates().itertuples(
                index=False):
            found.update((str(dataset), str(model), metric, reason) for metric, reason in json.loads(text).items())
    return sorted(found)


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


def _galleries(picks: dict[tuple[str, str, str], galleries.Selection],
               maps: dict[tuple[str, str, str], tuple[np.ndarray, bool]], items: dict[str, ExampleItems],
               methods: list[str], controls: set[str], metric: str | None, folder: Path) -> dict[tuple[str, str], str]:
    """Draw one gallery per (dataset, model) into ``folder``; their paths relative to it."""
    out = {}
    for dataset, model in sorted({(d, m) for d, m, _ in picks}):
        rows = []
        for method in methods:
            key = (dataset, model, method)
            if key not in picks or key not in maps:
                continue
            pick = picks[key]
            shown = pick.best + pick.worst
            if not set(shown) <= set(items[dataset].extra):
                continue
            rows.append(galleries.GalleryRow(method, shown, [pick.values[i] for i in shown], maps[key][0],
                                             maps[key][1], method in controls))
        if rows:
            name = f"figures/gallery_{dataset}_{model}.png"
            extra = items[dataset].extra
            galleries.gallery_figure(rows, {i: extra[i][0] for i in extra}, {i: extra[i][1] for i in extra},
                                     str(metric), folder / name)
            out[(dataset, model)] = name
    return out


def _shown_path(path: Path | None) -> str | None:
    """A claims file as the page names it: its last two path parts (no absolute path on the page)."""
    if path is None:
        return None
    path = Path(path)
    return f"{path.parent.name}/{path.name}" if path.parent.name else path.name


def _example_items(path: Path, k: int, extra: set[str] = frozenset()) -> ExampleItems:
    """Read the first ``k`` items of a data store (images, masks, ids, class names), and the ``extra`` items'
    images and masks."""
    ds = open_store(path)
    k = min(k, ds.sizes["item"])
    classes = list(ds.attrs.get("classes", []))
    targets = ds["target"].values[:k].astype(int)
    ids = [str(i) for i in ds["item"].values[:k]]
    has_masks = "mask" in ds and ds.attrs.get("has_masks", True)
    index = {str(i): n for n, i in enumerate(ds["item"].values)}
    rows = sorted(index[i] for i in extra if i in index)  # items of another kind (grid cells) are not shown
    images = ds["image"].values[rows] if rows else None
    masks = ds["mask"].values[rows] if rows and has_masks else None
    by_id = {str(ds["item"].values[r]): (images[n], None if masks is None else masks[n]) for n, r in enumerate(rows)}
    return ExampleItems(
        ids=ids, images=ds["image"].values[:k], masks=ds["mask"].values[:k] if has_masks else None,
        labels=[f"{i}\n{classes[t] if 0 <= t < len(classes) else t}" for i, t in zip(ids, targets)],
        manifest_sha256=str(ds.attrs.get("manifest_sha256", "unknown")), extra=by_id,
    )


def _read_maps(paths: list[Path], items: dict[str, ExampleItems],
               picks: dict[tuple[str, str, str], galleries.Selection] | None = None
               ) -> tuple[pd.DataFrame, dict[tuple[str, str], dict[str, tuple[np.ndarray, bool]]],
                          dict[tuple[str, str, str], tuple[np.ndarray, bool]]]:
    """Provenance rows of every maps store, per (dataset, model) each method's example maps and signedness, and
    per (dataset, model, method) the maps of its gallery items (best then worst)."""
    attrs, columns, gallery = [], {}, {}
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
        maps = saliency.sel(item=np.asarray(wanted, dtype=object)).values.astype(np.float32)  # float16 stores too
        columns.setdefault((dataset, model), {})[method] = (maps, signed)
        pick = (picks or {}).get((dataset, model, method))
        if pick is not None and set(pick.best + pick.worst) <= set(items[dataset].extra):
            shown = np.asarray(pick.best + pick.worst, dtype=object)
            gallery[(dataset, model, method)] = (saliency.sel(item=shown).values.astype(np.float32), signed)
        attrs.append(dict(ds.attrs))
    return tables.runs_table(attrs), columns, gallery


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
