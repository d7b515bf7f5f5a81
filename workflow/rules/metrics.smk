rule score:
    input:
        data="results/{dataset}/data.zarr",
        checkpoint=model_checkpoint,
        maps="results/{dataset}/{model}/saliency/{method}.zarr",
    output:
        "results/{dataset}/{model}/scores/{method}.parquet",
    log:
        "logs/score/{dataset}/{model}/{method}.log",
    threads: 1
    resources:
        gpu=1,
    params:
        metrics=metrics_json,
        name=method_name,
        spec=method_params,
        layer=layer_option,
        seed=config["seed"],
        device=config["device"],
        batch_size=config["batch_size"],
        code=score_code,
    conda:
        "../../environment.yml"
    shell:
        "salbench score --dataset {wildcards.dataset} --model {wildcards.model} --method-id {wildcards.method}"
        " --metrics {params.metrics:q} --data {input.data} --checkpoint {input.checkpoint} --maps {input.maps}"
        " --method {params.name} --params {params.spec:q} {params.layer} --seed {params.seed}"
        " --batch-size {params.batch_size} --device {params.device} --threads {threads} --out {output} > {log} 2>&1"
