"""``salbench``: the command line every workflow rule calls; also usable alone.

Each subcommand parses its arguments and calls one function of :mod:`salbench.jobs` (or the
registries); it holds no logic of its own.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path
from typing import Any, Sequence

# Before torch loads OpenMP: idle OpenMP threads sleep instead of spinning. Several jobs share a laptop's
# cores, and spinning threads then slow each other down 2-4x (measured on 2 shared cores: a training step
# 0.57-1.2 s with spinning, 0.26-0.32 s without). A user's own setting wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from .config import ConfigError, load_config  # noqa: E402

LIST_KINDS = ("methods", "models", "datasets", "metrics", "checks", "sections")
#: what to run when a job meets a damaged input (a StoreError)
REDO_HINT = ("`salbench verify --remove` removes every damaged result under results/; then run the same snakemake "
             "command again to redo them")


def _json(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise argparse.ArgumentTypeError(f"not valid JSON: {err}") from err


def _items(text: str) -> tuple[int, int]:
    from .shards import parse_items

    try:
        return parse_items(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from err


def _threads(args: argparse.Namespace) -> None:
    """Set up a compute job: its torch CPU threads, and host memory that stays mapped once freed."""
    import torch

    from .allocator import keep_freed_memory

    torch.set_num_threads(max(1, args.threads))
    keep_freed_memory()


def cmd_list(args: argparse.Namespace) -> None:
    # with --config, the study's plugins too (validating it imports its checks; the others load here)
    config = load_config(args.config) if args.config else {}
    if args.kind == "checks":  # each check with its citation (torch-free: no model registry needed)
        from .sanity.checks import CHECKS, describe_checks

        CHECKS.load_installed_plugins()
        rows = describe_checks()
    elif args.kind == "sections":  # in page order, each with what it reads
        from .report.sections import describe_sections

        rows = describe_sections()
    else:
        from .catalog import configured_plugins
        from .data import DATASETS
        from .methods import METHODS
        from .metrics import METRICS
        from .models import ARCHS

        registry, section = {"methods": (METHODS, "methods"), "models": (ARCHS, "archs"),
                             "datasets": (DATASETS, "datasets"), "metrics": (METRICS, "metrics")}[args.kind]
        registry.load_installed_plugins()  # installed entry-point plugins, marked with their package and version
        for _, plugin_section, ref, _ in configured_plugins(config) if config else ():
            if plugin_section == section:
                registry.get(ref.name)
        rows = registry.describe()
    width = max((len(name) for name, _ in rows), default=0)
    for name, description in rows:
        print(f"{name:<{width}}  {description}")


def cmd_check_config(args: argparse.Namespace) -> None:
    from .config import check_registry_params
    from .footprint import check_fits

    config = load_config(args.config)  # a folder, an unreadable or binary file: one line naming it
    check_registry_params(config)  # parameter values each registry entry refuses (ranges, choices)
    footprint = check_fits(config, args.results)  # a study that cannot fit the results folder's free space
    print(f"{args.config}: valid ({len(config['datasets'])} data sets, {len(config['models'])} models, "
          f"{len(config['methods'])} methods, {len(config['metrics'])} metrics)")
    print(footprint)


def cmd_catalog(args: argparse.Namespace) -> None:
    from .catalog import render_catalog, write_catalog

    if args.write:
        print(f"wrote {write_catalog()}")
    else:
        sys.stdout.write(render_catalog())


def cmd_get_dataset(args: argparse.Namespace) -> None:
    from .jobs import fetch_dataset

    fetch_dataset(args.source, args.params, args.out)


def cmd_prepare_dataset(args: argparse.Namespace) -> None:
    from .jobs import prepare_dataset

    prepare_dataset(args.dataset, args.source, args.params, args.root, args.out)


def cmd_train(args: argparse.Namespace) -> None:
    from .jobs import train

    _threads(args)
    record = train(args.source, args.params, args.root, args.arch, args.train, args.seed, args.device, args.out,
                   args.metrics)
    print(f"trained {args.arch}: val accuracy {record['final_val_accuracy']:.3f}")


def cmd_fetch_model(args: argparse.Namespace) -> None:
    from .models.user import UserModelError, fetch_model

    try:
        digest = fetch_model(args.model, args.entry, args.out)
    except UserModelError as err:
        raise ConfigError(str(err)) from None
    print(f"fetched model {args.model} -> {args.out} (sha256 {digest})")


def cmd_explain(args: argparse.Namespace) -> None:
    from .overlays import explain

    _threads(args)
    try:
        written = explain(args.model, args.method, args.images, args.out, params=args.params, target=args.target,
                          device=args.device, seed=args.seed, layer=args.layer, input_size=args.input_size,
                          mean=args.mean, std=args.std)
    except ValueError as err:
        raise ConfigError(str(err)) from None
    print(f"wrote {len(written)} overlays to {args.out}")


def cmd_saliency(args: argparse.Namespace) -> None:
    from .jobs import saliency

    _threads(args)
    saliency(args.dataset, args.model, args.method_id or args.method, args.method, args.params, args.data,
             args.checkpoint, args.seed, args.device, args.batch_size, args.out, target_layer=args.layer,
             items=args.items, maps_dtype=args.maps_dtype)


def cmd_sanity(args: argparse.Namespace) -> None:
    from .jobs import sanity

    _threads(args)
    table = sanity(args.dataset, args.model, args.method_id or args.method, args.method, args.params, args.data,
                   args.checkpoint, args.settings, args.seed, args.device, args.batch_size, args.out,
                   maps_out=args.maps_out, permuted_checkpoint=args.permuted_checkpoint, maps_path=args.maps,
                   target_layer=args.layer)
    print(f"sanity checks of {args.method_id or args.method}: {', '.join(sorted(table['check'].unique()))}")


def cmd_score(args: argparse.Namespace) -> None:
    from .jobs import score

    _threads(args)
    score(args.dataset, args.model, args.method_id, args.metrics, args.data, args.checkpoint, args.maps, args.device,
          args.batch_size, args.out, method_name=args.method, method_params=args.params, target_layer=args.layer,
          seed=args.seed, items=args.items, curves_out=args.curves_out)


def cmd_meta_evaluate(args: argparse.Namespace) -> None:
    from .meta_jobs import meta_evaluate_job

    _threads(args)
    meta, resilience = meta_evaluate_job(args.dataset, args.model, args.data, args.checkpoint, args.methods,
                                         args.metrics, args.settings, args.device, args.batch_size, args.out,
                                         args.resilience_out, target_layer=args.layer)
    flagged = sorted(set(meta.loc[meta["flagged"], "metric"]))
    print(f"meta-evaluation of {meta['metric'].nunique()} metrics: flagged {', '.join(flagged) or 'none'}; "
          f"resilient ranks of {resilience['metric'].nunique()} metric grids")


def cmd_gather(args: argparse.Namespace) -> None:
    from .shards import gather

    gather(args.shards, args.out)
    print(f"gathered {len(args.shards)} shards into {args.out}")


def cmd_build_grid(args: argparse.Namespace) -> None:
    from .jobs import build_grid

    _threads(args)
    ds = build_grid(args.dataset, args.model, args.data, args.checkpoint, args.settings, args.device, args.batch_size,
                    args.out)
    print(f"built {ds.attrs['n_grids_built']} {ds.attrs['n']}x{ds.attrs['n']} grids for {args.model} on {args.dataset}")


def cmd_grid_score(args: argparse.Namespace) -> None:
    from .jobs import grid_score

    _threads(args)
    table = grid_score(args.dataset, args.model, args.method_id or args.method, args.method, args.params, args.grids,
                       args.checkpoint, args.seed, args.device, args.batch_size, args.out, target_layer=args.layer,
                       maps_out=args.maps_out, keep=args.keep_maps)
    print(f"grid localisation of {args.method_id or args.method}: mean {table['value'].mean():.3f} over {len(table)} "
          f"(grid, cell) pairs")


def cmd_layerwise(args: argparse.Namespace) -> None:
    from .layerwise.run import layerwise_clusters

    _threads(args)
    ds = layerwise_clusters(args.dataset, args.model, args.data, args.checkpoint, args.seed, args.device, args.out,
                            items=args.items, batch_size=args.batch_size, threads=args.threads, layers=args.layers)
    print(f"layer-wise cluster maps of {args.model} on {args.dataset}: {ds.attrs['n_items']} items x "
          f"{ds.sizes['layer']} layers, {ds.attrs['seconds_per_item']:.2f} s per item")


def cmd_labelling_page(args: argparse.Namespace) -> None:
    from .layerwise.page import write_labelling_page

    rounds = write_labelling_page(args.clusters, args.data, args.out, items=args.items)
    print(f"labelling page with {rounds} rounds written to {args.out}")


def cmd_labels(args: argparse.Namespace) -> None:
    from .layerwise.explain import run_labels
    from .layerwise.labels import LabelFileError

    try:
        summary = run_labels(args.clusters, args.labels, args.out)
    except LabelFileError as err:
        raise SystemExit(f"salbench: {err}") from None
    print(f"labels: {summary['answers']} answers ({sum(summary['skipped'].values())} skipped), "
          f"{summary['synonyms']} characteristics, {summary['merged_groups']} merged cluster maps -> {args.out}")


def cmd_section(args: argparse.Namespace) -> None:
    from .report.sections import INPUT_GROUPS, SectionContext, run_section

    config = load_config(args.config) if args.config else args.config_json
    unknown = sorted({group for group, *_ in args.inputs} - set(INPUT_GROUPS))
    if unknown:
        raise ConfigError(f"--in: unknown input groups {', '.join(unknown)}; allowed: {', '.join(INPUT_GROUPS)}")
    ctx = SectionContext(study=config["study"], config=config,
                         inputs={group: [Path(p) for p in paths] for group, *paths in args.inputs}, out=args.out,
                         needed={name: Path(path) for name, path in (item.split("=", 1) for item in args.needs)})
    print(f"section {args.name} written to {run_section(args.name, ctx, table=args.table)}")


def cmd_report(args: argparse.Namespace) -> None:
    from .report.assemble import render_page

    config = load_config(args.config) if args.config else args.config_json
    folders = {name: Path(path) for name, path in (item.split("=", 1) for item in args.sections)}
    print(f"report written to {render_page(config['study'], folders, args.html.parent, config)}")


def cmd_verify(args: argparse.Namespace) -> None:
    from .verify import verify

    missing = [str(path) for path in args.paths if not path.exists()]
    if missing:
        raise ConfigError(f"nothing to verify: {', '.join(missing)} does not exist (run it in the project folder, "
                          "or name the results folder)")
    findings = verify(args.paths, remove_damaged=args.remove)
    if any(f.error for f in findings):
        raise SystemExit(1)


def cmd_publish(args: argparse.Namespace) -> None:
    from .report.publish import PublishError, archive_name, publish

    config = load_config(args.config) if args.config else args.config_json
    version = args.version or str(config["report"].get("version", "1"))
    try:
        out = args.out or Path("reports") / archive_name(config["study"], version)
        path = publish(study=config["study"], version=version, config=config, report_dir=args.report,
                       tables_dir=args.tables, out=out)
    except PublishError as err:
        raise ConfigError(str(err)) from err
    print(f"published {path}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="salbench",
        description="Reproducibility study of saliency methods. The workflow (snakemake) calls these subcommands; "
                    "each also runs alone on files the workflow wrote.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(name: str, func, help: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help, description=help)
        p.set_defaults(func=func)
        return p

    def model_job(p: argparse.ArgumentParser) -> None:
        p.add_argument("--device", default="auto", help="auto (cuda if available), cpu or cuda (default: auto)")
        p.add_argument("--threads", type=int, default=1, help="torch CPU threads (default: 1)")

    p = add("list", cmd_list, "list registered methods, models, datasets, metrics or checks with one-line descriptions")
    p.add_argument("kind", choices=LIST_KINDS)
    p.add_argument("--config", type=Path, help="a study config whose plugins (import paths) to list too")

    p = add("check-config", cmd_check_config, "validate a study config file and exit")
    p.add_argument("config", type=Path)
    p.add_argument("--results", type=Path, default=Path("results"),
                   help="the folder the study writes to, whose free space it must fit (default: results)")

    p = add("catalog", cmd_catalog, "print (or --write) the registry snapshot the workflow validates configs against")
    p.add_argument("--write", action="store_true", help="rewrite schemas/catalog.json")

    p = add("get-dataset", cmd_get_dataset, "download-and-verify or generate a data set into a folder")
    p.add_argument("--source", required=True, help="registered data-set name")
    p.add_argument("--params", type=_json, default={}, help="JSON overrides of the source's defaults")
    p.add_argument("--out", type=Path, required=True)

    p = add("prepare-dataset", cmd_prepare_dataset, "write a fetched data set's eval items as a zarr data store")
    p.add_argument("--dataset", required=True, help="data-set name in the config")
    p.add_argument("--source", required=True)
    p.add_argument("--params", type=_json, default={})
    p.add_argument("--root", type=Path, required=True, help="folder written by get-dataset")
    p.add_argument("--out", type=Path, required=True)

    p = add("train", cmd_train, "train a registered architecture on a fetched data set")
    p.add_argument("--source", required=True)
    p.add_argument("--params", type=_json, default={})
    p.add_argument("--root", type=Path, required=True)
    p.add_argument("--arch", required=True)
    p.add_argument("--train", type=_json, default={}, help="JSON training settings (epochs, lr, batch_size, ...)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, required=True, help="checkpoint path (.pt)")
    p.add_argument("--metrics", type=Path, required=True, help="training metrics JSON path")
    model_job(p)

    def method_job(p: argparse.ArgumentParser, data: bool = True) -> None:
        p.add_argument("--dataset", required=True)
        p.add_argument("--model", required=True, help="model name in the config")
        p.add_argument("--method", required=True, help="registered method name")
        p.add_argument("--method-id", help="method entry name in the config (default: --method)")
        p.add_argument("--params", type=_json, default={}, help="JSON overrides of the method's paper defaults")
        p.add_argument("--layer", help="target layer override for layer methods")
        if data:
            p.add_argument("--data", type=Path, required=True)
        p.add_argument("--checkpoint", type=Path, required=True)
        p.add_argument("--seed", type=int, default=0)
        p.add_argument("--batch-size", type=int, default=32)
        model_job(p)

    p = add("fetch-model", cmd_fetch_model,
            "write the checkpoint of a model that is fetched, not trained: a registered architecture's published "
            "weights (pretrained: imagenet; pinned hash, cached in $SALBENCH_WEIGHTS or resources/downloads) or a "
            "user model (arch: user; a torchvision/timm name + state-dict file, or a TorchScript file)")
    p.add_argument("--model", required=True, help="model name in the config")
    p.add_argument("--entry", type=_json, required=True, help="JSON of the config's models.<model> entry")
    p.add_argument("--out", type=Path, required=True, help="checkpoint path (.pt)")

    p = add("explain", cmd_explain,
            "a quick look without a workflow: one method's maps for image files, written as PNGs (image | map "
            "overlay: red positive, blue negative, or dark to bright for a non-negative map)")
    p.add_argument("images", type=Path, nargs="+", metavar="IMAGE", help="image files (any format Pillow reads)")
    p.add_argument("--model", required=True,
                   help="a registered architecture with published weights (e.g. tv_resnet50: fetched and cached), "
                        "a salbench checkpoint (.pt from train or fetch-model) or a TorchScript file")
    p.add_argument("--method", required=True, help="registered method name (salbench list methods)")
    p.add_argument("--params", type=_json, default={}, help="JSON overrides of the method's paper defaults")
    p.add_argument("--target", type=int, help="class index to explain (default: each image's top class)")
    p.add_argument("--layer", help="target layer override for layer methods")
    p.add_argument("--input-size", type=int, help="TorchScript model: square input size (default 224)")
    p.add_argument("--mean", type=float, nargs=3, help="TorchScript model: normalisation mean (default ImageNet)")
    p.add_argument("--std", type=float, nargs=3, help="TorchScript model: normalisation std (default ImageNet)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, required=True, help="folder of the PNGs (<image stem>.<method>.png)")
    model_job(p)

    items_help = "only the data store's items START:STOP (a shard; the workflow gathers the shards)"
    p = add("saliency", cmd_saliency, "compute one method's maps for every item of a data store")
    method_job(p)
    p.add_argument("--items", type=_items, help=items_help)
    p.add_argument("--maps-dtype", choices=("float32", "float16"), default="float32",
                   help="dtype of the stored maps (computed in float32; float16 halves the store)")
    p.add_argument("--out", type=Path, required=True)

    p = add("sanity", cmd_sanity, "run the sanity checks that apply to a data store for one method on one model")
    method_job(p)
    p.add_argument("--settings", type=_json, default={}, help="JSON of the config's sanity section")
    p.add_argument("--permuted-checkpoint", type=Path, help="model trained on permuted labels (data randomisation)")
    p.add_argument("--maps", type=Path, help="the method's maps store (two-object data sets: class checks)")
    p.add_argument("--maps-out", type=Path, help="zarr store for the randomisation cascade's maps")
    p.add_argument("--out", type=Path, required=True, help="tidy parquet table of per-item check values")

    p = add("score", cmd_score, "score one method's maps with the configured metrics (tidy parquet)")
    p.add_argument("--dataset", required=True)
    p.add_argument("--model", required=True)
    p.add_argument("--method-id", required=True)
    p.add_argument("--metrics", type=_json, required=True, help='JSON {name: {"metric": ..., "params": {...}}}')
    p.add_argument("--data", type=Path, required=True)
    p.add_argument("--checkpoint", type=Path, required=True)
    p.add_argument("--maps", type=Path, required=True)
    p.add_argument("--method", help="registered method name (for metrics that re-run it, e.g. max_sensitivity)")
    p.add_argument("--params", type=_json, default={}, help="JSON overrides of the method's paper defaults")
    p.add_argument("--layer", help="target layer override for layer methods")
    p.add_argument("--seed", type=int, default=0, help="seed for re-running the method (the saliency job's seed)")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--items", type=_items, help=items_help + "; --maps holds those items or all of them")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--curves-out", type=Path,
                   help="tidy parquet of the curve metrics' per-item curves (deletion, insertion, ROAD; empty if none)")
    model_job(p)

    p = add("meta-evaluate", cmd_meta_evaluate,
            "meta-evaluate every metric on one model (MetaQuantus noise resilience and adversarial reactivity) and "
            "rank a few methods under each metric's hyperparameter grid (resilient ranks)")
    p.add_argument("--dataset", required=True)
    p.add_argument("--model", required=True)
    p.add_argument("--methods", type=_json, required=True, help='JSON {id: {"method": ..., "params": {...}}}')
    p.add_argument("--metrics", type=_json, required=True, help='JSON {name: {"metric": ..., "params": {...}}}')
    p.add_argument("--settings", type=_json, default={}, help="JSON of the config's meta_evaluation section")
    p.add_argument("--data", type=Path, required=True)
    p.add_argument("--checkpoint", type=Path, required=True)
    p.add_argument("--layer", help="target layer override for layer methods")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--out", type=Path, required=True, help="meta-evaluation table (parquet)")
    p.add_argument("--resilience-out", type=Path, required=True, help="resilient-ranks table (parquet)")
    model_job(p)

    p = add("gather", cmd_gather, "gather the shards of a saliency store (.zarr) or score/curves table (.parquet) "
                                  "into the store or table an unsharded job writes")
    p.add_argument("shards", type=Path, nargs="+", help="shard stores or tables, in item order")
    p.add_argument("--out", type=Path, required=True, help="the gathered store (.zarr) or table (.parquet)")

    p = add("build-grid", cmd_build_grid,
            "build the grid-localisation grids (Böhle et al. 2021) of a single-object data store for one model: "
            "n x n grids of correctly, confidently classified items of distinct classes (seeded, recorded)")
    p.add_argument("--dataset", required=True)
    p.add_argument("--model", required=True, help="model name in the config")
    p.add_argument("--data", type=Path, required=True, help="data store (data.zarr)")
    p.add_argument("--checkpoint", type=Path, required=True)
    p.add_argument("--settings", type=_json, default={},
                   help="JSON of the config's grid section (n, n_grids, min_probability, seed, resize)")
    p.add_argument("--batch-size", type=int, default=32, help="items per forward pass")
    p.add_argument("--out", type=Path, required=True, help="grid store (grid.zarr)")
    model_job(p)

    p = add("grid-score", cmd_grid_score,
            "score one method's grid localisation on a grid store: per (grid, cell), the share of positive "
            "attribution for the cell's class inside the cell (chance 1/n^2); tidy parquet like `score`")
    method_job(p, data=False)
    p.add_argument("--grids", type=Path, required=True, help="grid store written by build-grid")
    p.add_argument("--out", type=Path, required=True, help="tidy parquet table, one row per (grid, cell)")
    p.add_argument("--maps-out", type=Path,
                   help="also keep the maps scored on the first grids, per cell's class, for the report (.zarr)")
    p.add_argument("--keep-maps", type=int, help="grids whose maps --maps-out keeps (default: salbench.grid.KEPT_GRIDS)")

    p = add("layerwise", cmd_layerwise,
            "layer-wise cluster maps (INV, Bianchi et al. 2024) of a model's layers for the first eval items: "
            "guided-gradient channel weights, PCA + t-SNE + Ward clustering, weighted cluster maps (clusters.zarr)")
    p.add_argument("--dataset", required=True)
    p.add_argument("--model", required=True, help="model name in the config")
    p.add_argument("--data", type=Path, required=True, help="data store (data.zarr)")
    p.add_argument("--checkpoint", type=Path, required=True)
    p.add_argument("--seed", type=int, default=0, help="seed of PCA and t-SNE (recorded)")
    p.add_argument("--items", type=int, default=16, help="explain the first N eval items (default: 16)")
    p.add_argument("--layers", nargs="+", help="layer names (default: the model spec's layerwise layers)")
    p.add_argument("--batch-size", type=int, default=16, help="items per forward/backward pass")
    p.add_argument("--out", type=Path, required=True, help="cluster store (clusters.zarr)")
    model_job(p)

    p = add("labelling-page", cmd_labelling_page,
            "write the self-contained labelling page (INV's Deep Reveal game) for a cluster store: players reveal "
            "each cluster map step by step, guess the class, describe it, and save their answers as a label file")
    p.add_argument("--clusters", type=Path, required=True, help="cluster store (clusters.zarr)")
    p.add_argument("--data", type=Path, required=True, help="data store (data.zarr) with the images")
    p.add_argument("--items", type=int, default=4, help="rounds for the first N items of the store (default: 4)")
    p.add_argument("--out", type=Path, required=True, help="the page (.html)")

    p = add("labels", cmd_labels,
            "ingest label files of cluster maps, score and process the labels (Sentence-BERT synonyms), merge "
            "same-label cluster maps and aggregate global explanations per class and layer (tables in --out)")
    p.add_argument("--clusters", type=Path, nargs="+", required=True, help="cluster stores the labels refer to")
    p.add_argument("--labels", type=Path, nargs="+", required=True, help="label files (JSON) saved by the page")
    p.add_argument("--out", type=Path, required=True, help="folder of the tables")

    p = add("section", cmd_section, "run one report section (salbench list sections): its tables, figures and "
                                    "template context in a folder, results/sections/{study}/NAME")
    p.add_argument("name", help="registered section name")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--config", type=Path, help="study config YAML")
    src.add_argument("--config-json", type=_json, help="the study's config (or the section's keys of it) as JSON")
    p.add_argument("--in", dest="inputs", nargs="+", action="append", default=[], metavar=("GROUP", "PATH"),
                   help="an input group and its files (repeat per group; salbench.report.sections.INPUT_GROUPS)")
    p.add_argument("--needs", nargs="*", default=[], help="NAME=FOLDER of each section this one reads")
    p.add_argument("--out", type=Path, required=True, help="the section's folder (results/sections/{study}/NAME)")
    p.add_argument("--table", type=Path, help="a copy of its main table (results/tables/{study}/NAME.parquet)")

    p = add("report", cmd_report, "assemble reports/{study}/index.html (and a page per method) from section folders")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--config", type=Path, help="study config YAML")
    src.add_argument("--config-json", type=_json, help="the study's config (its study and methods) as JSON")
    p.add_argument("--sections", nargs="+", required=True, help="NAME=FOLDER of each section to show")
    p.add_argument("--html", type=Path, required=True, help="reports/{study}/index.html; figures and tables beside it")

    p = add("verify", cmd_verify,
            "check every zarr store and parquet table under the results folder against the checksums it recorded "
            "(damage between runs: a flipped bit, a truncated copy, a deleted chunk); exit 1 if any is damaged")
    p.add_argument("paths", type=Path, nargs="*", default=[Path("results")], metavar="PATH",
                   help="folders, stores or tables to check (default: results)")
    p.add_argument("--remove", action="store_true",
                   help="remove each damaged store or table (or the job output folder holding it), so that the next "
                        "run of the workflow redoes exactly those jobs and the jobs that use their results")

    p = add("publish", cmd_publish, "archive the report folder and tables with a sha256 manifest: "
                                    "reports/{study}-{version}.tar.gz")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--config", type=Path, help="study config YAML")
    src.add_argument("--config-json", type=_json, help="validated study config as JSON")
    p.add_argument("--report", type=Path, required=True, help="the report folder (reports/{study})")
    p.add_argument("--tables", type=Path, required=True, help="the tables folder (results/tables/{study})")
    p.add_argument("--version", help="archive version (default: the config's report.version)")
    p.add_argument("--out", type=Path, help="archive path (default: reports/{study}-{version}.tar.gz)")

    p = add("progress", cmd_progress, "a running workflow's jobs done, estimated time left and where the report "
                                      "will be (read from its newest .snakemake log)")
    p.add_argument("--workdir", type=Path, default=Path("."), help="the run's work folder (default: here)")
    p.add_argument("--log", type=Path, help="a Snakemake log (default: the work folder's newest)")
    p.add_argument("--config", type=Path, help="the run's config file (default: config/config.yaml in the work folder)")
    p.add_argument("--watch", type=float, metavar="SECONDS", help="print again every SECONDS until the run ends")
    return parser


def cmd_progress(args: argparse.Namespace) -> None:
    from .progress import main as progress

    argv = ["--workdir", str(args.workdir)]
    for flag, value in (("--log", args.log), ("--config", args.config), ("--watch", args.watch)):
        if value is not None:
            argv += [flag, str(value)]
    code = progress(argv)
    if code:
        sys.exit(code)


def _damaged_input(err: Exception) -> bool:
    """Whether ``err`` says a store, table or checkpoint is damaged or missing (``StoreError``, ``CheckpointError``;
    their modules are loaded by every command that reads one)."""
    classes = [getattr(sys.modules.get(module), name, None)
               for module, name in (("salbench.store", "StoreError"), ("salbench.models.base", "CheckpointError"))]
    return any(cls is not None and isinstance(err, cls) for cls in classes)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    try:
        args.func(args)
    except ConfigError as err:
        print(f"salbench: {err}", file=sys.stderr)
        return 2
    except Exception as err:
        if not _damaged_input(err):
            raise
        print(f"salbench: {err} ({REDO_HINT})", file=sys.stderr)  # one line, no traceback
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
