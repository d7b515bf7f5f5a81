# Grid localisation (Böhle et al. 2021, CoDA-Nets) on single-object data sets, when the config has a `grid`
# section: the grids of confidently classified images of distinct classes, once per (data set, model), then
# each method's share of positive attribution inside the explained class's cell (tidy, like the score tables),
# with the maps it scored on the first few grids (the report's grid examples).


rule build_grid:
    input:
        data="results/{dataset}/data.zarr",
        checkpoint=model_checkpoint,
    output:
        directory("results/{dataset}/{model}/grid.zarr"),
    log:
        "logs/build_grid/{dataset}/{model}.log",
    wildcard_constraints:
        dataset=_alternatives(GRID_DATASETS),
    threads: 1
    resources:
        gpu=1,
    params:
        settings=grid_json,
        device=config["device"],
        batch_size=config["batch_size"],
        code=grid_code,
    conda:
        "../../environment.yml"
    shell:
        "salbench build-grid --dataset {wildcards.dataset} --model {wildcards.model} --data {input.data}"
        " --checkpoint {input.checkpoint} --settings {params.settings:q} --batch-size {params.batch_size}"
        " --device {params.device} --threads {threads} --out {output} > {log} 2>&1"


rule grid_localisation:
    input:
        grids="results/{dataset}/{model}/grid.zarr",
        checkpoint=model_checkpoint,
    output:
        table="results/{dataset}/{model}/grid/{method}.parquet",
        # the maps scored on the first few grids (salbench.grid.KEPT_GRIDS), for the report's grid examples
        maps=directory("results/{dataset}/{model}/grid/{method}.zarr"),
    log:
        "logs/grid_localisation/{dataset}/{model}/{method}.log",
    wildcard_constraints:
        dataset=_alternatives(GRID_DATASETS),
    threads: 1
    resources:
        gpu=1,
    params:
        options=method_options,
        code=grid_score_code,
    conda:
        "../../environment.yml"
    shell:
        "salbench grid-score {params.options} --grids {input.grids} --checkpoint {input.checkpoint}"
        " --threads {threads} --out {output.table} --maps-out {output.maps} > {log} 2>&1"
