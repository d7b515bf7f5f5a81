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
    # One thread: the weights depend on torch's thread count (a 2-thread run differs from a 1-thread one by up to
    # 5e-3 after one epoch), so a fixed 1 gives the same checkpoint whatever --cores scales threads down to. On 2
    # cores two training jobs side by side also beat one 2-thread job at a time: the demo's small nets used 1.09-1.43
    # cores with 2 threads (CPU / wall seconds of its CoDA-Net, ResNet, CNN), and the other models' saliency jobs
    # run beside the CoDA-Net's training, the longest (issue 30).
    threads: 1
    # models first: every other job waits on them
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
    threads: 1  # as train_model
    priority: 5  # after the models (only the data randomisation check reads it)
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
