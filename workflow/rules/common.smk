# Config validation, wildcard constraints, input and params functions for every rule.
import functools
import inspect
import os
import re
import shlex
import sys
from pathlib import Path

from snakemake.common import overwrite_function_params

from salbench.config import (
    ConfigError,
    canonical_json,
    grid_enabled,
    source_hash,
    training_dataset,
    workflow_config,
)
from salbench.catalog import study_catalog
from salbench.model_config import USER_ARCH, is_fetched, user_spec
from salbench.plugins import check_sources
from salbench.shards import merged_groups_warning, shard_ranges, store_size

DEFAULT_CONFIG = Path(workflow.basedir) / "config" / "config.yaml"
try:  # a --configfile study (an empty one is an error), else the default study
    _validated = workflow_config(config, workflow.config_settings.configfiles, DEFAULT_CONFIG)
except ConfigError as err:
    sys.exit(f"salbench: {err}")
config.clear()
config.update(_validated)

# The study's estimated disk footprint (salbench.footprint), once, in the main process: planning refuses only
# a study larger than the whole disk; onstart (a run, before any job) refuses one beyond the free space.
if workflow.is_main_process:
    from salbench.footprint import check_fits

    try:
        print(f"salbench: {check_fits(config, strict=False)}", file=sys.stderr)
    except ConfigError as err:
        sys.exit(f"salbench: {err}")

# Jobs call the `salbench` installed next to this interpreter, whether or not its environment is
# activated (with --sdm conda, the rule's environment comes first on PATH instead).
os.environ["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"

# Resume after a run killed outright: its lock files go when no run of this folder is alive (salbench.resume).
if workflow.is_main_process:
    from salbench.resume import release_stale_locks

    for _line in release_stale_locks():
        print(f"salbench: {_line}", file=sys.stderr)

# The registries' snapshot plus the study's plugins: their entries come from a fragment that validate_config
# built once by importing them, cached under a key over their sources (salbench.catalog.study_catalog).
CATALOG = study_catalog(config)
STUDY = config["study"]
DATASETS = sorted(config["datasets"])
TRAIN_DATASETS = [d for d in DATASETS if "models_from" not in config["datasets"][d]]
MODELS = sorted(config["models"])
METHODS = sorted(config["methods"])
# Models with pretrained or user weights are fetched (rule fetch_model), the others trained (train_model)
FETCHED_MODELS = [m for m in MODELS if is_fetched(config["models"][m])]
TRAINED_MODELS = [m for m in MODELS if m not in FETCHED_MODELS]


def known_signature(function):
    """``function`` with its signature recorded for Snakemake, which otherwise inspects the signature of an input or
    params function at every job (13 % of planning a sharded study of 8,000 jobs)."""
    overwrite_function_params(function, inspect.signature(function).parameters)
    return function


def _alternatives(names):
    """A wildcard regex matching exactly ``names``; ``(?!)``, which matches nothing, when there are none."""
    return "|".join(re.escape(n) for n in names) if names else "(?!)"


wildcard_constraints:
    dataset=_alternatives(DATASETS),
    model=_alternatives(MODELS),
    method=_alternatives(METHODS),


def model_spec(model):
    """The model's spec as plain data: the catalog's for a registered architecture, the config's for a user model."""
    entry = config["models"][model]
    return user_spec(model, entry) if entry["arch"] == USER_ARCH else CATALOG["archs"][entry["arch"]]["spec"]


def skip_reason(model, method):
    """Why a (model, method) pair is not scheduled (None when it is), from the registry catalog."""
    spec = model_spec(model)
    entry = CATALOG["methods"][config["methods"][method]["method"]]
    if entry["model_family"] and entry["model_family"] != spec["family"]:
        return f"{method} needs a {entry['model_family']} model; {model} is {spec['family']}"
    if entry["needs_gap_fc"] and not spec["gap_fc"]:
        return f"{method} needs global average pooling + one linear layer; {model} has not"
    for capability in entry["requires"]:
        if capability in spec["lacks"]:
            return f"{method} needs {capability}: {spec['lacks'][capability]}"
    return None


def dataset_selection(dataset, key, names):
    """The models or methods (``key``) a data set's entry restricts itself to (all ``names`` by default; the
    names are checked by validate_config)."""
    chosen = config["datasets"][dataset].get(key, names)
    return [n for n in names if n in chosen]


def method_runs_on(method, model):
    """Whether the method's entry lets it run on ``model`` (its ``models`` list; every model by default)."""
    return model in config["methods"][method].get("models", MODELS)


SALIENCY_JOBS = [
    (d, m, k)
    for d in DATASETS
    for m in dataset_selection(d, "models", MODELS)
    for k in dataset_selection(d, "methods", METHODS)
    if method_runs_on(k, m) and skip_reason(m, k) is None
]
SKIPPED = {(m, k): skip_reason(m, k) for m in MODELS for k in METHODS if skip_reason(m, k)}
#: (data set, model) pairs with at least one saliency job (the report draws a figure per pair)
EVALUATED_PAIRS = sorted({(d, m) for d, m, _ in SALIENCY_JOBS})


def variant_checkpoints():
    """{"DATASET/MODEL": checkpoint} of every (dataset, model) with a library variant job (``method@library``):
    the report re-runs the variants there on a few items to measure why they disagree with ours."""
    pairs = sorted({(d, m) for d, m, k in SALIENCY_JOBS if "@" in config["methods"][k]["method"]})
    return {f"{d}/{m}": checkpoint_path(d, m) for d, m in pairs}


def objects_per_image(dataset):
    return CATALOG["datasets"][config["datasets"][dataset]["source"]]["objects"]


# Sanity checks (the registered checks, from the catalog): model checks on single-object data sets, class checks on
# two-object ones
def sanity_checks(dataset):
    """The catalog entries of the sanity checks that apply to a data set (by its objects per image)."""
    return [c for c in CATALOG["checks"].values() if c["objects"] == objects_per_image(dataset)]


def sanity_applies(dataset, model):
    """Whether the model has what every check of the data set requires: the checks run as one job (the model
    checks re-initialise layers, which a TorchScript model or a ViT lacks)."""
    lacks = model_spec(model)["lacks"]
    return all(not set(c["requires"]) & set(lacks) for c in sanity_checks(dataset))


MODEL_CHECK_DATASETS = [d for d in DATASETS if objects_per_image(d) == 1 and sanity_checks(d)]
CLASS_CHECK_DATASETS = [d for d in DATASETS if objects_per_image(d) == 2 and sanity_checks(d)]
SANITY_JOBS = [job for job in SALIENCY_JOBS if job[0] in (*MODEL_CHECK_DATASETS, *CLASS_CHECK_DATASETS)
               and sanity_applies(job[0], job[1]) and config["sanity"].get("enabled", True)]
# Grid localisation (config `grid`): grids per single-object data set and model, scored for every method
GRID_DATASETS = MODEL_CHECK_DATASETS if grid_enabled(config) else []
GRID_JOBS = [job for job in SALIENCY_JOBS if job[0] in GRID_DATASETS]


def sanity_table(dataset, model, method):
    return f"results/{dataset}/{model}/sanity/{method}.parquet"


def sanity_cascade(dataset, model, method):
    return f"results/{dataset}/{model}/sanity/{method}.zarr"


#: sanity keys only the report's verdicts read: changing them reruns the report, not the checks
VERDICT_ONLY_KEYS = ("thresholds", "top_fraction")


def sanity_json(wildcards=None):
    return canonical_json({k: v for k, v in config["sanity"].items() if k not in VERDICT_ONLY_KEYS})


def permuted_checkpoint(wildcards):
    """The model trained on permuted labels (data randomisation); none for a fetched model (a user model, which
    cannot be retrained here, or published pretrained weights, whose evaluation data sets have no training split):
    its sanity checks leave data randomisation out."""
    if wildcards.model in FETCHED_MODELS:
        return []
    return f"results/{training_dataset(config, wildcards.dataset)}/models/{wildcards.model}.permuted.pt"


def permuted_option(wildcards, input):
    return f"--permuted-checkpoint {input.permuted}" if input.permuted else ""


def permuted_train_params(wildcards):
    """The model's training settings, overridden by the data-randomisation ones, on permuted labels without
    augmentation (Adebayo et al. 2018: the model memorises random labels)."""
    model = config["models"][wildcards.model]
    settings = {**model["train"], **config["sanity"]["data_randomisation"], **model.get("permuted_train", {})}
    return canonical_json({**settings, "permute_labels": True, "augment": False})


# Sharding (datasets.<d>.shard_size; salbench.shards): a sharded data set's saliency and score jobs run one job
# per shard of its items, and gather jobs write the unsharded paths. The shard count needs the data store's item
# count, so prepare_dataset is a checkpoint in a study with a sharded data set (workflow/rules/data.smk).
SHARDED_DATASETS = [d for d in DATASETS if config["datasets"][d].get("shard_size")]
UNSHARDED_DATASETS = [d for d in DATASETS if d not in SHARDED_DATASETS]


#: {data set: its shard ranges}, once its checkpoint is complete: a store made in this run is not made again in it,
#: and every shard job asks (a 20,000-job study read the store's metadata 7,000 times)
_SHARD_RANGES = {}


def data_shards(dataset):
    """``[start, stop)`` of each shard of a sharded data set (once its data store exists)."""
    if dataset not in _SHARD_RANGES:
        store = checkpoints.prepare_dataset.get(dataset=dataset).output[0]  # raises until the store is made
        _SHARD_RANGES[dataset] = shard_ranges(store_size(store), config["datasets"][dataset]["shard_size"])
    return _SHARD_RANGES[dataset]


def shard_inputs(pattern):
    """An input function: ``pattern`` (with ``{shard}``) for every shard of the job's data set, in item order."""

    def inputs(wildcards):
        return [pattern.format(**dict(wildcards.items()), shard=k) for k in range(len(data_shards(wildcards.dataset)))]

    return known_signature(inputs)


def shard_options(wildcards):
    """``method_options`` and ``--items START:STOP``, the items of the job's shard."""
    start, stop = data_shards(wildcards.dataset)[int(wildcards.shard)]
    return f"{method_options(wildcards)} --items {start}:{stop}"


def gather_code(wildcards=None):
    return source_hash(["shards.py"])


def saliency_store(dataset, model, method):
    return f"results/{dataset}/{model}/saliency/{method}.zarr"


def score_table(dataset, model, method):
    return f"results/{dataset}/{model}/scores/{method}.parquet"


def curves_table(dataset, model, method):
    """The per-item curves of the curve metrics (deletion, insertion, ROAD) beside the score table."""
    return f"results/{dataset}/{model}/scores/{method}.curves.parquet"


def claims_file():
    """config report.claims: as given when it exists (relative to the working directory), else in the
    workflow's folder (a study run in another directory still finds the shipped config/claims.yaml)."""
    given = Path(config["report"]["claims"])
    return str(given if given.is_absolute() or given.exists() else Path(workflow.basedir) / given)


def final_outputs():
    # meta_outputs is defined below (called when `rule all` is parsed). Every result the report reads is a target
    # of its own: Snakemake 9.27 does not look behind a finished job that reads a checkpoint's output (data.zarr) for
    # inputs that went missing, so a result deleted by hand or by `salbench verify --remove` would not be redone.
    return [f"reports/{STUDY}/index.html", *meta_outputs(), *rules.report.input]


def checkpoint_path(dataset, model):
    """A fetched model's one checkpoint, or the model trained on the data set's training data set."""
    if model in FETCHED_MODELS:
        return f"results/models/{model}.pt"
    return f"results/{training_dataset(config, dataset)}/models/{model}.pt"


def model_checkpoint(wildcards):
    return checkpoint_path(wildcards.dataset, wildcards.model)


def dataset_params(wildcards):
    return canonical_json(config["datasets"][wildcards.dataset]["params"])


def dataset_source(wildcards):
    return config["datasets"][wildcards.dataset]["source"]


def train_params(wildcards):
    return canonical_json(config["models"][wildcards.model]["train"])


def model_arch(wildcards):
    return config["models"][wildcards.model]["arch"]


def method_options(wildcards):
    """What every (data set, model, method) job passes to its ``salbench`` command: ``--dataset --model --method
    --method-id --params [--layer] --seed --batch-size --device``, quoted for the shell.

    One params value and one field of the shell command instead of nine: Snakemake calls each params function and
    formats each field once per job (three times when it lists the job); planning a 20,000-job study took about
    6 % less (``benchmarks/dag.py --against``). As a params value it still triggers reruns when any of them
    changes."""
    return _method_options(wildcards.dataset, wildcards.model, wildcards.method)


@functools.cache
def _method_options(dataset, model, method):
    spec = config["methods"][method]
    layer = config["models"][model].get("target_layer")
    options = ["--dataset", dataset, "--model", model, "--method", spec["method"], "--method-id", method,
               "--params", canonical_json(spec["params"]), *(["--layer", layer] if layer else []),
               "--seed", str(config["seed"]), "--batch-size", str(config["batch_size"]), "--device", config["device"]]
    return shlex.join(options)


def layer_option(wildcards):
    layer = config["models"][wildcards.model].get("target_layer")
    return f"--layer {layer}" if layer else ""


@functools.cache
def _metrics_json():
    return canonical_json(config["metrics"])


def metrics_json(wildcards=None):
    return _metrics_json()


# Rerun triggers for library code (Snakemake does not track imported modules): each rule's params
# carry a hash of exactly the sources it depends on.
def _modules(section, names):
    return [CATALOG[section][n]["module"] for n in names]


def data_code(wildcards):
    return source_hash(["data/prepare.py", "data/splits.py", *_modules("datasets", [dataset_source(wildcards)])])


# The code hashes are cached per key (model, method): the sources do not change while Snakemake plans, and every
# job of a key asks again (thousands of times in a sharded study).
def model_code(wildcards):
    return _model_code(model_arch(wildcards))


@functools.cache
def _model_code(arch):
    return source_hash(["train.py", *_modules("archs", [arch])])


def method_code(wildcards):
    return _method_code(wildcards.method)


@functools.cache
def _method_code(method):
    spec = config["methods"][method]
    names = [spec["method"]]
    base = spec["params"].get("base", CATALOG["methods"][spec["method"]]["params"].get("base"))
    if base:  # wrappers (SmoothGrad, VarGrad) do not import their base method's module
        names.append(base)
    return source_hash(["saliency.py", *_modules("methods", names)])


@functools.cache
def _checks_code():
    return source_hash(["sanity/run.py", *check_sources(config)])


def sanity_code(wildcards):
    """The method's sources, the checks' (sanity/run.py imports every built-in one) and the study's check plugins'."""
    return f"{method_code(wildcards)}+{_checks_code()}"


def grid_table(dataset, model, method):
    return f"results/{dataset}/{model}/grid/{method}.parquet"


def grid_maps(dataset, model, method):
    """The maps the grid localisation job scored on the first few grids (the report's grid examples)."""
    return f"results/{dataset}/{model}/grid/{method}.zarr"


def grid_json(wildcards=None):
    return canonical_json(config.get("grid") or {})


def grid_code(wildcards=None):
    return source_hash(["grid.py"])


def grid_score_code(wildcards):
    return f"{method_code(wildcards)}+{grid_code()}"


@functools.cache
def _metrics_code():
    return source_hash(_modules("metrics", [s["metric"] for s in config["metrics"].values()]))


def metrics_code(wildcards=None):
    return _metrics_code()


def score_code(wildcards):
    """Score jobs may re-run the method (max-sensitivity): the metrics' sources and the method's."""
    return f"{metrics_code()}+{method_code(wildcards)}"


# Layer-wise cluster maps (INV, Bianchi et al. 2024; config `layerwise`, rules in layerwise.smk): per training
# data set, the listed models, or every model whose architecture names layer-wise layers.
LAYERWISE = config.get("layerwise") or {}


def _layerwise_models():
    if not LAYERWISE.get("enabled", False):
        return []
    listed = LAYERWISE.get("models")
    if listed is None:
        return [m for m in MODELS if model_spec(m).get("layerwise")]
    for model in listed:
        if model not in MODELS:
            sys.exit(f"salbench: config key 'layerwise.models': {model!r} is not a model of this config; "
                     f"allowed values: {', '.join(MODELS)}")
        spec = model_spec(model)
        if "layerwise" in spec and not spec["layerwise"]:
            sys.exit(f"salbench: config key 'layerwise.models': architecture {spec['arch']!r} of {model!r} names no "
                     "layer-wise layers")
    return list(listed)


LAYERWISE_MODELS = _layerwise_models()
LAYERWISE_DATASETS = TRAIN_DATASETS if LAYERWISE_MODELS else []
LAYERWISE_JOBS = [(d, m) for d in LAYERWISE_DATASETS for m in LAYERWISE_MODELS]


def layerwise_store(dataset, model):
    return f"results/{dataset}/{model}/layerwise/clusters.zarr"


def layerwise_outputs():
    return [layerwise_store(d, m) for d, m in LAYERWISE_JOBS]


def layerwise_code(wildcards=None):
    return source_hash(["layerwise/run.py"])


# The human step (rules labelling_page, layerwise_labels in layerwise.smk): a labelling page per cluster store,
# and the label files of `layerwise.labels` processed in one job (the synonyms are shared across models).
LAYERWISE_LABELS = f"results/tables/{STUDY}/layerwise"


def labelling_page(dataset, model):
    return f"results/{dataset}/{model}/layerwise/labelling.html"


def labelling_outputs():
    return [labelling_page(d, m) for d, m in LAYERWISE_JOBS]


def label_files():
    """The config's label files: relative to the working directory, else to the workflow's folder."""
    paths = [Path(p) for p in LAYERWISE.get("labels", [])] if LAYERWISE_JOBS else []
    return [str(p if p.is_absolute() or p.exists() else Path(workflow.basedir) / p) for p in paths]


def layerwise_labels_output():
    """The labels job's folder when there are label files to ingest, else nothing."""
    return [LAYERWISE_LABELS] if label_files() else []


onstart:
    # Parameter values a registry entry refuses (out of range, not a choice) and a missing folder of the
    # user's images fail here, before any job (a data set already fetched is not read again); the
    # validation above stays cheap (no torch, no disk) because every cluster job re-parses the Snakefile.
    from salbench.config import check_registry_params
    from salbench.footprint import check_fits

    try:
        check_registry_params(config, fetched=[d for d in DATASETS if Path(f"resources/datasets/{d}").is_dir()])
        check_fits(config)  # the estimate (printed above) must fit the results folder's free space
    except ConfigError as err:
        sys.exit(f"salbench: {err}")
    for (model, method), reason in sorted(SKIPPED.items()):
        print(f"salbench: skipping {method} on {model}: {reason}", file=sys.stderr)
    warning = merged_groups_warning(SHARDED_DATASETS, workflow.group_settings.group_components, workflow.local_exec)
    if warning:
        print(f"salbench: warning: {warning}", file=sys.stderr)


# fetch_model (models.smk)
def fetch_entry(wildcards):
    """The model's entry without the training settings (defaults the schema fills in; a fetched model ignores them)."""
    entry = config["models"][wildcards.model]
    return canonical_json({k: v for k, v in entry.items() if k not in ("train", "permuted_train")})


def fetch_inputs_stamp(wildcards):
    """A user model's weights file by size and mtime (reruns fetch_model when it changes). Not an input: a
    study whose user weights are not there yet still plans, and the job says where to put them."""
    path = Path(config["models"][wildcards.model].get("checkpoint", ""))
    return f"{path}:{path.stat().st_size}:{path.stat().st_mtime_ns}" if path.is_file() else "missing"


def fetch_code(wildcards=None):
    return source_hash(["models/user.py"])


# The report (report.smk)
# Figures and tables `snakemake --report` shows, beyond the always drawn ones: each is declared only for configs
# where the report job always writes it (a declared output the job does not write fails the job).
GRID_PAIRS = sorted({(d, m) for d, m, _ in GRID_JOBS})  # a grid examples figure each, even without grids
CASCADE_PAIRS = sorted({(d, m) for d, m, _ in SANITY_JOBS if d in MODEL_CHECK_DATASETS})  # cascade stage maps
#: the cascade curves need the cascading mode's rows (the stage maps are drawn from any model check)
SANITY_CURVES = bool(CASCADE_PAIRS) and "cascading" in config["sanity"]["modes"]


def variant_pair_ran():
    """Whether a library variant (``base@library``) and its base ran on one (data set, model): the report then
    writes the implementation agreement's pairs and steps tables (report/agreement.py variant_pairs)."""
    names = {}
    for d, m, k in SALIENCY_JOBS:
        names.setdefault((d, m), set()).add(config["methods"][k]["method"])
    return any(base in found for found in names.values()
               for base, at, library in (name.partition("@") for name in found) if at and library)


def per_pair_report(kind, pairs, caption, category):
    """One labelled report() output per (data set, model): ``reports/{study}/figures/{kind}_{dataset}_{model}.png``."""
    return {
        f"{kind}_{i}": report(
            f"reports/{STUDY}/figures/{kind}_{d}_{m}.png",
            caption=caption,
            category=category,
            subcategory=f"{d} / {m}",
            labels={"data set": d, "model": m},
        )
        for i, (d, m) in enumerate(pairs)
    }


# How far to trust each metric and resilient ranks (config `meta_evaluation`, rule in meta.smk,
# salbench.meta_jobs): one job per (data set, model) on the section's methods that run on the model.
from types import SimpleNamespace

from salbench.meta_config import SECTION as META_SECTION

META = config.get(META_SECTION) or {}  # checked by validate_config


def meta_methods(model):
    """The section's methods that run on ``model`` (its entry's models, the catalog's capabilities)."""
    return [k for k in META.get("methods", []) if method_runs_on(k, model) and skip_reason(model, k) is None]


META_JOBS = [
    (d, m)
    for d in META.get("datasets", TRAIN_DATASETS)
    for m in dataset_selection(d, "models", META.get("models", MODELS))
    if META.get("enabled", True) and len(meta_methods(m)) >= 2
]


def meta_outputs():
    return [f"results/{d}/{m}/meta/{name}.parquet" for d, m in META_JOBS for name in ("meta_evaluation", "resilience")]


def meta_methods_json(wildcards):
    return canonical_json({k: config["methods"][k] for k in meta_methods(wildcards.model)})


def meta_settings_json(wildcards=None):
    return canonical_json({k: v for k, v in META.items() if k not in ("methods", "models", "datasets", "enabled")})


def meta_code(wildcards):
    methods = [method_code(SimpleNamespace(method=k)) for k in meta_methods(wildcards.model)]
    return "+".join([source_hash(["meta_jobs.py"]), metrics_code(), *methods])


# Every function above may be an input or params function of some rule: record their signatures once (known_signature).
_HERE = known_signature.__code__.co_filename
for _function in [f for f in globals().values() if inspect.isfunction(f) and f.__code__.co_filename == _HERE]:
    known_signature(_function)
