# Sanity checks per (data set, model, method): model checks on single-object data sets (with the cascade's
# maps for the report's figure), class checks on two-object data sets (from the method's saliency maps).


rule sanity_model_checks:
    input:
        data="results/{dataset}/data.zarr",
        checkpoint=model_checkpoint,
        permuted=permuted_checkpoint,
    output:
        table="results/{dataset}/{model}/sanity/{method}.parquet",
        cascade=directory("results/{dataset}/{model}/sanity/{method}.zarr"),
    log:
        "logs/sanity/{dataset}/{model}/{method}.log",
    wildcard_constraints:
        dataset=_alternatives(MODEL_CHECK_DATASETS),
    threads: 1
    resources:
        gpu=1,
    params:
        options=method_options,
        settings=sanity_json,
        code=sanity_code,
        permuted=permuted_option,
    conda:
        "../../environment.yml"
    shell:
        "salbench sanity {params.options} --data {input.data} --checkpoint {input.checkpoint} {params.permuted}"
        " --settings {params.settings:q} --threads {threads} --out {output.table} --maps-out {output.cascade}"
        " > {log} 2>&1"


rule sanity_class_checks:
    input:
        data="results/{dataset}/data.zarr",
        checkpoint=model_checkpoint,
        maps="results/{dataset}/{model}/saliency/{method}.zarr",
    output:
        table="results/{dataset}/{model}/sanity/{method}.parquet",
    log:
        "logs/sanity/{dataset}/{model}/{method}.log",
    wildcard_constraints:
        dataset=_alternatives(CLASS_CHECK_DATASETS),
    threads: 1
    resources:
        gpu=1,
    params:
        options=method_options,
        settings=sanity_json,
        code=sanity_code,
    conda:
        "../../environment.yml"
    shell:
        "salbench sanity {params.options} --data {input.data} --checkpoint {input.checkpoint} --maps {input.maps}"
        " --settings {params.settings:q} --threads {threads} --out {output.table} > {log} 2>&1"
