# Saliency maps per (data set, model, method). A data set with `shard_size` gets one job per shard of its items
# (saliency_shard) and a gather job that writes the same store at the same path (gather_saliency).

SALIENCY_PARAMS = dict(
    options=method_options,
    maps_dtype=config["maps_dtype"],
    code=method_code,
)
SALIENCY_CMD = (
    "salbench saliency {params.options} --data {input.data} --checkpoint {input.checkpoint} --threads {threads}"
    " --maps-dtype {params.maps_dtype}"
)


rule saliency:
    input:
        data="results/{dataset}/data.zarr",
        checkpoint=model_checkpoint,
    output:
        directory("results/{dataset}/{model}/saliency/{method}.zarr"),
    log:
        "logs/saliency/{dataset}/{model}/{method}.log",
    wildcard_constraints:
        dataset=_alternatives(UNSHARDED_DATASETS),
    threads: 1
    resources:
        gpu=1,
    params:
        **SALIENCY_PARAMS,
    conda:
        "../../environment.yml"
    shell:
        f"{SALIENCY_CMD} --out {{output}} > {{log}} 2>&1"


rule saliency_shard:
    input:
        data="results/{dataset}/data.zarr",
        checkpoint=model_checkpoint,
    output:
        directory("results/{dataset}/{model}/saliency/shards/{method}/{shard}.zarr"),
    log:
        "logs/saliency/{dataset}/{model}/{method}/{shard}.log",
    wildcard_constraints:
        dataset=_alternatives(SHARDED_DATASETS),
        shard=r"\d+",
    threads: 1
    resources:
        gpu=1,
    params:
        **SALIENCY_PARAMS | dict(options=shard_options),
    conda:
        "../../environment.yml"
    shell:
        f"{SALIENCY_CMD} --out {{output}} > {{log}} 2>&1"


rule gather_saliency:
    input:
        shard_inputs("results/{dataset}/{model}/saliency/shards/{method}/{shard}.zarr"),
    output:
        directory("results/{dataset}/{model}/saliency/{method}.zarr"),
    log:
        "logs/gather_saliency/{dataset}/{model}/{method}.log",
    wildcard_constraints:
        dataset=_alternatives(SHARDED_DATASETS),
    params:
        code=gather_code,
    conda:
        "../../environment.yml"
    shell:
        "salbench gather {input} --out {output} > {log} 2>&1"
