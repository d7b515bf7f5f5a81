# The study report (reports/{study}/index.html + tables) and its published archive (`snakemake publish`).

rule report:
    input:
        scores=[score_table(*job) for job in SALIENCY_JOBS],
        curves=[curves_table(*job) for job in SALIENCY_JOBS],
        maps=[saliency_store(*job) for job in SALIENCY_JOBS],
        data=expand("results/{dataset}/data.zarr", dataset=DATASETS),
        sanity=[sanity_table(*job) for job in SANITY_JOBS],
        cascades=[sanity_cascade(*job) for job in SANITY_JOBS if job[0] in MODEL_CHECK_DATASETS],
        grids=[grid_table(*job) for job in GRID_JOBS],
        grid_maps=[grid_maps(*job) for job in GRID_JOBS],
        claims=claims_file(),
        fidelity=str(Path(workflow.basedir) / "docs" / "fidelity.md"),
        meta=meta_outputs(),
        layerwise=[layerwise_store(*job) for job in LAYERWISE_JOBS],
        layerwise_labels=layerwise_labels_output(),
        variant_models=list(variant_checkpoints().values()),
    output:
        html=f"reports/{STUDY}/index.html",
        scores_table=f"results/tables/{STUDY}/scores.parquet",
        summary_table=f"results/tables/{STUDY}/summary.parquet",
        summary=report(
            f"results/tables/{STUDY}/summary.csv", caption="../report/leaderboard.rst", category="Leaderboard"
        ),
        metrics_png=report(
            f"reports/{STUDY}/figures/metrics.png", caption="../report/metrics_figure.rst", category="Metrics"
        ),
        metrics_svg=f"reports/{STUDY}/figures/metrics.svg",
        ranks=f"results/tables/{STUDY}/ranks.csv",
        agreement=report(
            f"results/tables/{STUDY}/rank_agreement.csv",
            caption="../report/rank_agreement_table.rst",
            category="Rank agreement",
        ),
        ranks_png=report(f"reports/{STUDY}/figures/ranks.png", caption="../report/ranks.rst", category="Ranks"),
        ranks_svg=f"reports/{STUDY}/figures/ranks.svg",
        agreement_png=report(
            f"reports/{STUDY}/figures/rank_agreement.png",
            caption="../report/rank_agreement.rst",
            category="Rank agreement",
        ),
        agreement_svg=f"reports/{STUDY}/figures/rank_agreement.svg",
        examples=report(
            [f"reports/{STUDY}/figures/examples_{d}_{m}.png" for d, m in EVALUATED_PAIRS],
            caption="../report/examples.rst",
            category="Example maps",
        ),
        galleries=report(
            [f"reports/{STUDY}/figures/gallery_{d}_{m}.png" for d, m in EVALUATED_PAIRS],
            caption="../report/galleries.rst",
            category="Best and worst items",
        ),
        claims=report(f"results/tables/{STUDY}/claims.csv", caption="../report/claims.rst", category="Claims"),
        **(
            {
                "verdicts": report(
                    f"results/tables/{STUDY}/sanity_verdicts.csv",
                    caption="../report/sanity.rst",
                    category="Sanity checks",
                )
            }
            if SANITY_JOBS
            else {}
        ),
        **per_pair_report("grid_examples", GRID_PAIRS, "../report/grid_examples.rst", "Grid localisation examples"),
        grid_examples_svg=[f"reports/{STUDY}/figures/grid_examples_{d}_{m}.svg" for d, m in GRID_PAIRS],
        **per_pair_report("sanity_stages", CASCADE_PAIRS, "../report/sanity_stages.rst", "Sanity checks"),
        **(
            {
                "sanity_cascade": report(
                    f"reports/{STUDY}/figures/sanity_cascade.png",
                    caption="../report/sanity_cascade.rst",
                    category="Sanity checks",
                ),
                "sanity_cascade_svg": f"reports/{STUDY}/figures/sanity_cascade.svg",
            }
            if SANITY_CURVES
            else {}
        ),
        # the trends figures need people's labels of the listed layers: drawn only for some, not declared
        **per_pair_report("layerwise_maps", LAYERWISE_JOBS, "../report/layerwise.rst", "Layer-wise explanations"),
        **(
            {
                "implementation_agreement": report(
                    [f"reports/{STUDY}/implementation_agreement_{t}.csv" for t in ("pairs", "steps")],
                    caption="../report/implementation_agreement.rst",
                    category="Implementation agreement",
                )
            }
            if variant_pair_ran()
            else {}
        ),
    log:
        f"logs/report/{STUDY}.log",
    params:
        config=canonical_json(config),
        data=[f"{d}=results/{d}/data.zarr" for d in DATASETS],
        code=source_hash([
            "report/build.py", "report/agreement.py", "report/curves.py", "report/grid_examples.py", "report/fidelity.py",
            "report/meta.py",
        ]),
        variant_models=[f"{pair}={path}" for pair, path in variant_checkpoints().items()],
        layerwise_labels=" ".join(f"--layerwise-labels {p}" for p in layerwise_labels_output()),
    conda:
        "../../environment.yml"
    shell:
        "salbench report --config-json {params.config:q} --scores {input.scores} {input.grids} --curves {input.curves}"
        " --maps {input.maps}"
        " --data {params.data} --html {output.html} --summary {output.summary} --sanity {input.sanity}"
        " --cascades {input.cascades} --grid-maps {input.grid_maps} --claims {input.claims} --fidelity {input.fidelity}"
        " --meta {input.meta}"
        " --layerwise-clusters {input.layerwise}"
        " {params.layerwise_labels} --checkpoints {params.variant_models} > {log} 2>&1"


rule publish:
    input:
        html=f"reports/{STUDY}/index.html",
        summary=f"results/tables/{STUDY}/summary.csv",
    output:
        f"reports/{STUDY}-{config['report']['version']}.tar.gz",
    log:
        f"logs/publish/{STUDY}.log",
    params:
        config=canonical_json(config),
        version=config["report"]["version"],
        report=lambda wildcards, input: os.path.dirname(input.html),
        tables=lambda wildcards, input: os.path.dirname(input.summary),
        code=source_hash(["report/publish.py"]),
    conda:
        "../../environment.yml"
    shell:
        "salbench publish --config-json {params.config:q} --report {params.report} --tables {params.tables}"
        " --version {params.version:q} --out {output} > {log} 2>&1"
