rule get_dataset:
    output:
        directory("resources/datasets/{dataset}"),
    log:
        "logs/get_dataset/{dataset}.log",
    params:
        source=dataset_source,
        spec=dataset_params,
        code=data_code,
    conda:
        "../../environment.yml"
    shell:
        "salbench get-dataset --source {params.source} --params {params.spec:q} --out {output} > {log} 2>&1"


checkpoint prepare_dataset:
    input:
        "resources/datasets/{dataset}",
    output:
        directory("results/{dataset}/data.zarr"),
    log:
        "logs/prepare_dataset/{dataset}.log",
    params:
        source=dataset_source,
        spec=dataset_params,
        code=data_code,
    conda:
        "../../environment.yml"
    shell:
        "salbench prepare-dataset --dataset {wildcards.dataset} --source {params.source} --params {params.spec:q}"
        " --root {input} --out {output} > {log} 2>&1"
