# Scores per (data set, model, method). A data set with `shard_size` gets one job per shard of its items, on the
# shard's maps (score_shard), and a gather job that writes the same table at the same path (gather_scores).

SCORE_PARAMS = dict(
    metrics=metrics_json,
    name=method_name,
    spec=method_params,
    layer=layer_option,
    seed=config["seed"],
    device=config["device"],
    batch_size=config["batch_size"],
    code=score_code,
)
SCORE_CMD = (
    "salbench score --dataset {wildcards.dataset} --model {wildcards.model} --method-id {wildcards.method}"
    " --metrics {params.metrics:q} --data {input.data} --checkpoint {input.checkpoint} --maps {input.maps}"
    " --method {params.name} --params {params.spec:q} {params.layer} --seed {params.seed}"
    " --batch-size {params.batch_size} --device {params.device} --threads {threads}"
)


rule score:
    input:
        data="results/{dataset}/data.zarr",
        checkpoint=model_checkpoint,
        maps="results/{dataset}/{model}/saliency/{method}.zarr",
    output:
        "results/{dataset}/{model}/scores/{method}.parquet",
    log:
        "logs/score/{dataset}/{model}/{method}.log",
    wildcard_constraints:
        dataset=_alternatives(UNSHARDED_DATASETS),
    threads: 1
    resources:
        gpu=1,
    params:
        **SCORE_PARAMS,
    conda:
        "../../environment.yml"
    shell:
        SCORE_CMD + " --out {output} > {log} 2>&1"


rule score_shard:
    input:
        data="results/{dataset}/data.zarr",
        checkpoint=model_checkpoint,
        maps="results/{dataset}/{model}/saliency/shards/{method}/{shard}.zarr",
    output:
        "results/{dataset}/{model}/scores/shards/{method}/{shard}.parquet",
    log:
        "logs/score/{dataset}/{model}/{method}/{shard}.log",
    wildcard_constraints:
        dataset=_alternatives(SHARDED_DATASETS),
        shard=r"\d+",
    threads: 1
    resources:
        gpu=1,
    params:
        item_range=shard_items,
        **SCORE_PARAMS,
    conda:
        "../../environment.yml"
    shell:
        SCORE_CMD + " --items {params.item_range} --out {output} > {log} 2>&1"


rule gather_scores:
    input:
        shard_inputs("results/{dataset}/{model}/scores/shards/{method}/{shard}.parquet"),
    output:
        "results/{dataset}/{model}/scores/{method}.parquet",
    log:
        "logs/gather_scores/{dataset}/{model}/{method}.log",
    wildcard_constraints:
        dataset=_alternatives(SHARDED_DATASETS),
    params:
        code=gather_code,
    conda:
        "../../environment.yml"
    shell:
        "salbench gather {input} --out {output} > {log} 2>&1"
