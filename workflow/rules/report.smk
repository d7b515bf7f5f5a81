rule report:
    input:
        scores=[score_table(*job) for job in SALIENCY_JOBS],
        maps=[saliency_store(*job) for job in SALIENCY_JOBS],
        data=expand("results/{dataset}/data.zarr", dataset=DATASETS),
        sanity=[sanity_table(*job) for job in SANITY_JOBS],
        cascades=[sanity_cascade(*job) for job in SANITY_JOBS if job[0] in MODEL_CHECK_DATASETS],
        grids=[grid_table(*job) for job in GRID_JOBS],
    output:
        html=f"reports/{STUDY}/index.html",
        summary=report(
            f"results/tables/{STUDY}/summary.csv", caption="../report/leaderboard.rst", category="Leaderboard"
        ),
        metrics_png=report(
            f"reports/{STUDY}/figures/metrics.png", caption="../report/metrics_figure.rst", category="Metrics"
        ),
        metrics_svg=f"reports/{STUDY}/figures/metrics.svg",
        ranks=f"results/tables/{STUDY}/ranks.csv",
        agreement=f"results/tables/{STUDY}/rank_agreement.csv",
        ranks_png=report(f"reports/{STUDY}/figures/ranks.png", caption="../report/ranks.rst", category="Ranks"),
        ranks_svg=f"reports/{STUDY}/figures/ranks.svg",
        agreement_png=report(
            f"reports/{STUDY}/figures/rank_agreement.png",
            caption="../report/rank_agreement.rst",
            category="Rank agreement",
        ),
        agreement_svg=f"reports/{STUDY}/figures/rank_agreement.svg",
        examples=report(
            expand(f"reports/{STUDY}/figures/examples_{{dataset}}_{{model}}.png", dataset=DATASETS, model=MODELS),
            caption="../report/examples.rst",
            category="Example maps",
        ),
    log:
        f"logs/report/{STUDY}.log",
    params:
        config=canonical_json(config),
        data=[f"{d}=results/{d}/data.zarr" for d in DATASETS],
        code=source_hash(["report/build.py"]),
    conda:
        "../../environment.yml"
    shell:
        "salbench report --config-json {params.config:q} --scores {input.scores} {input.grids} --maps {input.maps}"
        " --data {params.data} --html {output.html} --summary {output.summary} --sanity {input.sanity}"
        " --cascades {input.cascades} > {log} 2>&1"
