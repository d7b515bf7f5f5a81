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

LIST_KINDS = ("methods", "models", "datasets", "metrics")


def _json(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise argparse.ArgumentTypeError(f"not valid JSON: {err}") from err


def _threads(args: argparse.Namespace) -> None:
    import torch

    torch.set_num_threads(max(1, args.threads))


def cmd_list(args: argparse.Namespace) -> None:
    from .data import DATASETS
    from .methods import METHODS
    from .metrics import METRICS
    from .models import ARCHS

    registry = {"methods": METHODS, "models": ARCHS, "datasets": DATASETS, "metrics": METRICS}[args.kind]
    rows = registry.describe()
    width = max((len(name) for name, _ in rows), default=0)
    for name, description in rows:
        print(f"{name:<{width}}  {description}")


def cmd_check_config(args: argparse.Namespace) -> None:
    config = load_config(args.config)
    print(f"{args.config}: valid ({len(config['datasets'])} data sets, {len(config['models'])} models, "
          f"{len(config['methods'])} methods, {len(config['metrics'])} metrics)")


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


def cmd_saliency(args: argparse.Namespace) -> None:
    from .jobs import saliency

    _threads(args)
    saliency(args.dataset, args.model, args.method_id or args.method, args.method, args.params, args.data,
             args.checkpoint, args.seed, args.device, args.batch_size, args.out, target_layer=args.layer)


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
          seed=args.seed)


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
                       args.checkpoint, args.seed, args.device, args.batch_size, args.out, target_layer=args.layer)
    print(f"grid localisation of {args.method_id or args.method}: mean {table['value'].mean():.3f} over {len(table)} "
          f"(grid, cell) pairs")


def cmd_report(args: argparse.Namespace) -> None:
    from .grid import GridSettings
    from .jobs import metric_info
    from .report import build_report

    config = load_config(args.config) if args.config else args.config_json
    data_stores = dict(item.split("=", 1) for item in args.data)
    info = {**metric_info(config["metrics"]), **GridSettings.from_config(config.get("grid")).metric_info()}
    path = build_report(study=config["study"], config=config, score_files=args.scores, map_stores=args.maps,
                        data_stores={k: Path(v) for k, v in data_stores.items()}, out_dir=args.html.parent,
                        tables_dir=args.summary.parent, metric_info=info,
                        sanity_files=args.sanity, cascade_stores=args.cascades)
    print(f"report written to {path}")


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

    p = add("list", cmd_list, "list registered methods, models, datasets or metrics with one-line descriptions")
    p.add_argument("kind", choices=LIST_KINDS)

    p = add("check-config", cmd_check_config, "validate a study config file and exit")
    p.add_argument("config", type=Path)

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

    p = add("saliency", cmd_saliency, "compute one method's maps for every item of a data store")
    method_job(p)
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
    p.add_argument("--out", type=Path, required=True)
    model_job(p)

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

    p = add("report", cmd_report, "aggregate scores and render reports/{study}/index.html")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--config", type=Path, help="study config YAML")
    src.add_argument("--config-json", type=_json, help="validated study config as JSON")
    p.add_argument("--scores", type=Path, nargs="+", required=True)
    p.add_argument("--maps", type=Path, nargs="+", required=True)
    p.add_argument("--data", nargs="+", required=True, help="NAME=PATH data stores")
    p.add_argument("--html", type=Path, required=True, help="reports/{study}/index.html; figures go beside it")
    p.add_argument("--summary", type=Path, required=True, help="results/tables/{study}/summary.csv; other tables beside it")
    p.add_argument("--sanity", type=Path, nargs="*", default=[], help="sanity-check tables (parquet)")
    p.add_argument("--cascades", type=Path, nargs="*", default=[], help="cascade map stores of the sanity checks")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    try:
        args.func(args)
    except ConfigError as err:
        print(f"salbench: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
