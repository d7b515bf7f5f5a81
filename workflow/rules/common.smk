# Config validation, wildcard constraints, input and params functions for every rule.
import os
import re
import sys
from pathlib import Path

from salbench.config import (
    ConfigError,
    canonical_json,
    grid_enabled,
    load_catalog,
    read_config_file,
    source_hash,
    training_dataset,
    validate_config,
)

DEFAULT_CONFIG = Path(workflow.basedir) / "config" / "config.yaml"
try:
    _validated = validate_config(config or read_config_file(DEFAULT_CONFIG))
except ConfigError as err:
    sys.exit(f"salbench: {err}")
config.clear()
config.update(_validated)

# Jobs call the `salbench` installed next to this interpreter, whether or not its environment is
# activated (with --sdm conda, the rule's environment comes first on PATH instead).
os.environ["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"

CATALOG = load_catalog()
STUDY = config["study"]
DATASETS = sorted(config["datasets"])
TRAIN_DATASETS = [d for d in DATASETS if "models_from" not in config["datasets"][d]]
MODELS = sorted(config["models"])
METHODS = sorted(config["methods"])


def _alternatives(names):
    """A wildcard regex matching exactly ``names``; ``(?!)``, which matches nothing, when there are none."""
    return "|".join(re.escape(n) for n in names) if names else "(?!)"


wildcard_constraints:
    dataset=_alternatives(DATASETS),
    model=_alternatives(MODELS),
    method=_alternatives(METHODS),


def skip_reason(model, method):
    """Why a (model, method) pair is not scheduled (None when it is), from the registry catalog."""
    spec = CATALOG["archs"][config["models"][model]["arch"]]["spec"]
    entry = CATALOG["methods"][config["methods"][method]["method"]]
    if entry["model_family"] and entry["model_family"] != spec["family"]:
        return f"{method} needs a {entry['model_family']} model; {model} is {spec['family']}"
    if entry["needs_gap_fc"] and not spec["gap_fc"]:
        return f"{method} needs global average pooling + one linear layer; {model} has not"
    for capability in entry["requires"]:
        if capability in spec["lacks"]:
            return f"{method} needs {capability}: {spec['lacks'][capability]}"
    return None


SALIENCY_JOBS = [
    (d, m, k) for d in DATASETS for m in MODELS for k in METHODS if skip_reason(m, k) is None
]
SKIPPED = {(m, k): skip_reason(m, k) for m in MODELS for k in METHODS if skip_reason(m, k)}


def objects_per_image(dataset):
    return CATALOG["datasets"][config["datasets"][dataset]["source"]]["objects"]


# Sanity checks: model checks on single-object data sets, class checks on two-object ones
MODEL_CHECK_DATASETS = [d for d in DATASETS if objects_per_image(d) == 1]
CLASS_CHECK_DATASETS = [d for d in DATASETS if objects_per_image(d) == 2]
SANITY_JOBS = [job for job in SALIENCY_JOBS if job[0] in MODEL_CHECK_DATASETS + CLASS_CHECK_DATASETS]
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
    return f"results/{training_dataset(config, wildcards.dataset)}/models/{wildcards.model}.permuted.pt"


def permuted_train_params(wildcards):
    """The model's training settings, overridden by the data-randomisation ones, on permuted labels without
    augmentation (Adebayo et al. 2018: the model memorises random labels)."""
    model = config["models"][wildcards.model]
    settings = {**model["train"], **config["sanity"]["data_randomisation"], **model.get("permuted_train", {})}
    return canonical_json({**settings, "permute_labels": True, "augment": False})


def saliency_store(dataset, model, method):
    return f"results/{dataset}/{model}/saliency/{method}.zarr"


def score_table(dataset, model, method):
    return f"results/{dataset}/{model}/scores/{method}.parquet"


def final_outputs():
    return [f"reports/{STUDY}/index.html"]


def model_checkpoint(wildcards):
    return f"results/{training_dataset(config, wildcards.dataset)}/models/{wildcards.model}.pt"


def dataset_params(wildcards):
    return canonical_json(config["datasets"][wildcards.dataset]["params"])


def dataset_source(wildcards):
    return config["datasets"][wildcards.dataset]["source"]


def train_params(wildcards):
    return canonical_json(config["models"][wildcards.model]["train"])


def model_arch(wildcards):
    return config["models"][wildcards.model]["arch"]


def method_name(wildcards):
    return config["methods"][wildcards.method]["method"]


def method_params(wildcards):
    return canonical_json(config["methods"][wildcards.method]["params"])


def layer_option(wildcards):
    layer = config["models"][wildcards.model].get("target_layer")
    return f"--layer {layer}" if layer else ""


def metrics_json(wildcards=None):
    return canonical_json(config["metrics"])


# Rerun triggers for library code (Snakemake does not track imported modules): each rule's params
# carry a hash of exactly the sources it depends on.
def _modules(section, names):
    return [CATALOG[section][n]["module"] for n in names]


def data_code(wildcards):
    return source_hash(["data/prepare.py", "data/splits.py", *_modules("datasets", [dataset_source(wildcards)])])


def model_code(wildcards):
    return source_hash(["train.py", *_modules("archs", [model_arch(wildcards)])])


def method_code(wildcards):
    spec = config["methods"][wildcards.method]
    names = [spec["method"]]
    base = spec["params"].get("base", CATALOG["methods"][spec["method"]]["params"].get("base"))
    if base:  # wrappers (SmoothGrad, VarGrad) do not import their base method's module
        names.append(base)
    return source_hash(["saliency.py", *_modules("methods", names)])


def sanity_code(wildcards):
    return f"{method_code(wildcards)}+{source_hash(['sanity/run.py'])}"


def grid_table(dataset, model, method):
    return f"results/{dataset}/{model}/grid/{method}.parquet"


def grid_json(wildcards=None):
    return canonical_json(config.get("grid") or {})


def grid_code(wildcards=None):
    return source_hash(["grid.py"])


def grid_score_code(wildcards):
    return f"{method_code(wildcards)}+{grid_code()}"


def metrics_code(wildcards=None):
    return source_hash(_modules("metrics", [s["metric"] for s in config["metrics"].values()]))


def score_code(wildcards):
    """Score jobs may re-run the method (max-sensitivity): the metrics' sources and the method's."""
    return f"{metrics_code()}+{method_code(wildcards)}"


onstart:
    for (model, method), reason in sorted(SKIPPED.items()):
        print(f"salbench: skipping {method} on {model}: {reason}", file=sys.stderr)
