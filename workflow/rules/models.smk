rule train_model:
    input:
        "resources/datasets/{dataset}",
    output:
        checkpoint="results/{dataset}/models/{model}.pt",
        metrics=report(
            "results/{dataset}/models/{model}.train.json",
            category="Models",
            labels={"data set": "{dataset}", "model": "{model}"},
        ),
    log:
        "logs/train_model/{dataset}/{model}.log",
    wildcard_constraints:
        dataset=_alternatives(TRAIN_DATASETS),
        model=_alternatives(TRAINED_MODELS),
    threads: 2
    # models first: every other job waits on them, and a 2-thread job queued behind 1-thread jobs waits for two
    # cores to come free at once (the demo's CoDA-Net started after 43 of its 50 minutes without this)
    priority: 10
    params:
        source=dataset_source,
        spec=dataset_params,
        arch=model_arch,
        train=train_params,
        seed=config["seed"],
        device=config["device"],
        code=model_code,
    conda:
        "../../environment.yml"
    shell:
        "salbench train --source {params.source} --params {params.spec:q} --root {input} --arch {params.arch}"
        " --train {params.train:q} --seed {params.seed} --device {params.device} --threads {threads}"
        " --out {output.checkpoint} --metrics {output.metrics} > {log} 2>&1"


rule train_permuted_model:
    input:
        "resources/datasets/{dataset}",
    output:
        checkpoint="results/{dataset}/models/{model}.permuted.pt",
        metrics="results/{dataset}/models/{model}.permuted.train.json",
    log:
        "logs/train_permuted_model/{dataset}/{model}.log",
    wildcard_constraints:
        dataset=_alternatives(TRAIN_DATASETS),
        model=_alternatives([m for m in MODELS if config["models"][m]["arch"] != USER_ARCH]),  # registered archs
    threads: 2
    priority: 10  # as train_model
    params:
        source=dataset_source,
        spec=dataset_params,
        arch=model_arch,
        train=permuted_train_params,
        seed=config["seed"],
        device=config["device"],
        code=model_code,
    conda:
        "../../environment.yml"
    shell:
        "salbench train --source {params.source} --params {params.spec:q} --root {input} --arch {params.arch}"
        " --train {params.train:q} --seed {params.seed} --device {params.device} --threads {threads}"
        " --out {output.checkpoint} --metrics {output.metrics} > {log} 2>&1"


# Pretrained (pinned-hash download into the weights cache) and user models (their own weights file): one
# checkpoint per model, whatever the data set, loaded by every model job like a trained one.
rule fetch_model:
    output:
        "results/models/{model}.pt",
    log:
        "logs/fetch_model/{model}.log",
    wildcard_constraints:
        model=_alternatives(FETCHED_MODELS),
    threads: 1
    params:
        entry=fetch_entry,
        stamp=fetch_inputs_stamp,
        code=fetch_code,
    conda:
        "../../environment.yml"
    shell:
        "salbench fetch-model --model {wildcards.model} --entry {params.entry:q} --out {output} > {log} 2>&1"
