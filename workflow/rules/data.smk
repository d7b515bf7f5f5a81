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


# prepare_dataset is a checkpoint only in a study with a sharded data set, whose shard jobs need its store's item
# count. Elsewhere it is a plain rule, because Snakemake 9.27 re-forms the group jobs each time a checkpoint
# completes (and at the start of a rerun that finds one complete), and with `group-components` above 1 (profiles/slurm)
# it re-merges the groups it merged before: one job then sits in two SLURM group jobs, which run it twice at once
# (snakemake/snakemake#1628, snakemake-executor-plugin-slurm#253; seen in tests/workflow/test_slurm.py).
PREPARE_INPUT = "resources/datasets/{dataset}"
PREPARE_OUTPUT = directory("results/{dataset}/data.zarr")
PREPARE_LOG = "logs/prepare_dataset/{dataset}.log"
PREPARE_PARAMS = dict(source=dataset_source, spec=dataset_params, code=data_code)
PREPARE_SHELL = ("salbench prepare-dataset --dataset {wildcards.dataset} --source {params.source}"
                 " --params {params.spec:q} --root {input} --out {output} > {log} 2>&1")

if SHARDED_DATASETS:

    checkpoint prepare_dataset:
        input:
            PREPARE_INPUT,
        output:
            PREPARE_OUTPUT,
        log:
            PREPARE_LOG,
        params:
            **PREPARE_PARAMS,
        conda:
            "../../environment.yml"
        shell:
            PREPARE_SHELL

else:

    rule prepare_dataset:
        input:
            PREPARE_INPUT,
        output:
            PREPARE_OUTPUT,
        log:
            PREPARE_LOG,
        params:
            **PREPARE_PARAMS,
        conda:
            "../../environment.yml"
        shell:
            PREPARE_SHELL
