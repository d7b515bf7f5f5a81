# Layer-wise interpretable network visualisations (INV, Bianchi et al. 2024), when the config has a `layerwise`
# section: per training data set and explained model, the cluster maps of the layers the architecture's spec
# names (`layerwise`) for the first `items` eval items, with their weights (clusters.zarr). Helpers: common.smk.


rule layerwise_clusters:
    input:
        data="results/{dataset}/data.zarr",
        checkpoint=model_checkpoint,
    output:
        directory("results/{dataset}/{model}/layerwise/clusters.zarr"),
    log:
        "logs/layerwise_clusters/{dataset}/{model}.log",
    wildcard_constraints:
        dataset=_alternatives(LAYERWISE_DATASETS),
        model=_alternatives(LAYERWISE_MODELS),
    threads: 1
    resources:
        gpu=1,
    params:  # the section's settings the maps depend on (not `models`: listing a model reruns only its job)
        n_items=LAYERWISE.get("items", 0),
        seed=LAYERWISE.get("seed", 0),
        device=config["device"],
        batch_size=config["batch_size"],
        code=layerwise_code,
    conda:
        "../../environment.yml"
    shell:
        "salbench layerwise --dataset {wildcards.dataset} --model {wildcards.model} --data {input.data}"
        " --checkpoint {input.checkpoint} --items {params.n_items} --seed {params.seed}"
        " --batch-size {params.batch_size} --device {params.device} --threads {threads} --out {output} > {log} 2>&1"


# The human step: a self-contained labelling page per cluster store (the game, played offline in a browser;
# its "Save answers" file goes into `layerwise.labels`), then every listed label file processed into scores,
# synonyms, merged cluster maps and global explanations (results/tables/{study}/layerwise/).


rule labelling_page:
    input:
        clusters="results/{dataset}/{model}/layerwise/clusters.zarr",
        data="results/{dataset}/data.zarr",
    output:
        "results/{dataset}/{model}/layerwise/labelling.html",
    log:
        "logs/labelling_page/{dataset}/{model}.log",
    wildcard_constraints:
        dataset=_alternatives(LAYERWISE_DATASETS),
        model=_alternatives(LAYERWISE_MODELS),
    params:
        n_items=LAYERWISE.get("page_items", 4),
        code=source_hash(["layerwise/page.py"]),
    conda:
        "../../environment.yml"
    shell:
        "salbench labelling-page --clusters {input.clusters} --data {input.data} --items {params.n_items}"
        " --out {output} > {log} 2>&1"


rule layerwise_labels:
    input:
        clusters=layerwise_outputs(),
        labels=label_files(),
    output:
        directory(LAYERWISE_LABELS),
    log:
        f"logs/layerwise_labels/{STUDY}.log",
    params:
        labels=LAYERWISE.get("labels", []),
        code=source_hash(["layerwise/explain.py"]),
    conda:
        "../../environment.yml"
    shell:
        "salbench labels --clusters {input.clusters} --labels {input.labels} --out {output} > {log} 2>&1"
