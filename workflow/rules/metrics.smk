# Scores per (data set, model, method), and beside them the per-item curves of the curve metrics (deletion,
# insertion, ROAD; an empty table when none is configured) that the report draws. A data set with `shard_size` gets
# one job per shard of its items, on the shard's maps (score_shard), and a gather job that writes the same tables at
# the same paths (gather_scores).

SCORE_PARAMS = dict(
    options=method_options,
    metrics=metrics_json,
    code=score_code,
)
SCORE_CMD = (
    "salbench score {params.options} --metrics {params.metrics:q} --data {input.data}"
    " --checkpoint {input.checkpoint} --maps {input.maps} --threads {threads}"
)


rule score:
    input:
        data="results/{dataset}/data.zarr",
        checkpoint=model_checkpoint,
        maps="results/{dataset}/{model}/saliency/{method}.zarr",
    output:
        scores="results/{dataset}/{model}/scores/{method}.parquet",
        curves="results/{dataset}/{model}/scores/{method}.curves.parquet",
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
        f"{SCORE_CMD} --out {{output.scores}} --curves-out {{output.curves}} > {{log}} 2>&1"


rule score_shard:
    input:
        data="results/{dataset}/data.zarr",
        checkpoint=model_checkpoint,
        maps="results/{dataset}/{model}/saliency/shards/{method}/{shard}.zarr",
    output:
        scores="results/{dataset}/{model}/scores/shards/{method}/{shard}.parquet",
        curves="results/{dataset}/{model}/scores/shards/{method}/{shard}.curves.parquet",
    log:
        "logs/score/{dataset}/{model}/{method}/{shard}.log",
    wildcard_constraints:
        dataset=_alternatives(SHARDED_DATASETS),
        shard=r"\d+",
    threads: 1
    resources:
        gpu=1,
    params:
        **SCORE_PARAMS | dict(options=shard_options),
    conda:
        "../../environment.yml"
    shell:
        f"{SCORE_CMD} --out {{output.scores}} --curves-out {{output.curves}} > {{log}} 2>&1"


rule gather_scores:
    input:
        scores=shard_inputs("results/{dataset}/{model}/scores/shards/{method}/{shard}.parquet"),
        curves=shard_inputs("results/{dataset}/{model}/scores/shards/{method}/{shard}.curves.parquet"),
    output:
        scores="results/{dataset}/{model}/scores/{method}.parquet",
        curves="results/{dataset}/{model}/scores/{method}.curves.parquet",
    log:
        "logs/gather_scores/{dataset}/{model}/{method}.log",
    wildcard_constraints:
        dataset=_alternatives(SHARDED_DATASETS),
    params:
        code=gather_code,
    conda:
        "../../environment.yml"
    shell:
        "(salbench gather {input.scores} --out {output.scores}"
        " && salbench gather {input.curves} --out {output.curves}) > {log} 2>&1"
