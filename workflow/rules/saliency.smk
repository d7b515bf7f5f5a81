rule saliency:
    input:
        data="results/{dataset}/data.zarr",
        checkpoint=model_checkpoint,
    output:
        directory("results/{dataset}/{model}/saliency/{method}.zarr"),
    log:
        "logs/saliency/{dataset}/{model}/{method}.log",
    threads: 1
    resources:
        gpu=1,
    params:
        name=method_name,
        spec=method_params,
        layer=layer_option,
        seed=config["seed"],
        device=config["device"],
        batch_size=config["batch_size"],
        code=method_code,
    conda:
        "../../environment.yml"
    shell:
        "salbench saliency --dataset {wildcards.dataset} --model {wildcards.model} --method {params.name}"
        " --method-id {wildcards.method} --params {params.spec:q} {params.layer} --data {input.data}"
        " --checkpoint {input.checkpoint} --seed {params.seed} --batch-size {params.batch_size}"
        " --device {params.device} --threads {threads} --out {output} > {log} 2>&1"
