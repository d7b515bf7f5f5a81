# How far to trust each metric (MetaQuantus, Hedström et al. 2023) and rankings that survive the metrics' own
# settings (Wickstrøm, Höhne & Hedström 2024): config `meta_evaluation`, one job per (data set, model) that
# perturbs the model and the inputs, re-runs a few methods, re-scores every metric, and ranks the methods over
# each metric's declared grid (salbench.meta_jobs). No section, no jobs (META_JOBS in common.smk).


rule meta_evaluate:
    input:
        data="results/{dataset}/data.zarr",
        checkpoint=model_checkpoint,
    output:
        table="results/{dataset}/{model}/meta/meta_evaluation.parquet",
        resilience="results/{dataset}/{model}/meta/resilience.parquet",
    log:
        "logs/meta/{dataset}/{model}.log",
    threads: 1
    resources:
        gpu=1,
    params:
        methods=meta_methods_json,
        metrics=metrics_json,
        settings=meta_settings_json,
        layer=layer_option,
        device=config["device"],
        batch_size=config["batch_size"],
        code=meta_code,
    conda:
        "../../environment.yml"
    shell:
        "salbench meta-evaluate --dataset {wildcards.dataset} --model {wildcards.model} --methods {params.methods:q}"
        " --metrics {params.metrics:q} --settings {params.settings:q} {params.layer} --data {input.data}"
        " --checkpoint {input.checkpoint} --batch-size {params.batch_size} --device {params.device}"
        " --threads {threads} --out {output.table} --resilience-out {output.resilience} > {log} 2>&1"
