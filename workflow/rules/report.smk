# The study report: one rule per registered report section (salbench.report.sections; `salbench list sections`),
# generated below, then the page assembly (reports/{study}/index.html) and its published archive.
# A section's rule carries only its own input groups, config keys and source hash, so editing config/claims.yaml
# reruns section_claims and the assembly, editing a metric reruns its scores and the sections that read them.
from salbench.report.rules import rst_text, section_args, section_folder
from salbench.report.sections import INPUT_GROUPS, get_section
from salbench.report.sections.base import dependency_order, section_config, templates_hash
from salbench.sources import module_file

SECTION_NAMES = dependency_order()
#: the files of each input group a section may read
SECTION_INPUTS = {
    "scores": [score_table(*job) for job in SALIENCY_JOBS],
    "curves": [curves_table(*job) for job in SALIENCY_JOBS],
    "maps": [saliency_store(*job) for job in SALIENCY_JOBS],
    "data": expand("results/{dataset}/data.zarr", dataset=DATASETS),
    "sanity": [sanity_table(*job) for job in SANITY_JOBS],
    "cascades": [sanity_cascade(*job) for job in SANITY_JOBS if job[0] in MODEL_CHECK_DATASETS],
    "grids": [grid_table(*job) for job in GRID_JOBS],
    "grid_maps": [grid_maps(*job) for job in GRID_JOBS],
    "claims": [claims_file()],
    "fidelity": [str(Path(workflow.basedir) / "docs" / "fidelity.md")],
    "meta": meta_outputs(),
    "layerwise": [layerwise_store(*job) for job in LAYERWISE_JOBS],
    "layerwise_labels": layerwise_labels_output(),
    "variant_models": list(variant_checkpoints().values()),
}
if set(SECTION_INPUTS) != set(INPUT_GROUPS):
    sys.exit(f"salbench: report.smk maps input groups {sorted(SECTION_INPUTS)}, the sections know {sorted(INPUT_GROUPS)}")
#: every result a section reads: inputs of the assembly too, so that `rule all` (final_outputs) targets them
SECTION_RESULTS = sorted({path for name in SECTION_NAMES for group in get_section(name).inputs
                          for path in SECTION_INPUTS[group]})


for _name in SECTION_NAMES:
    _section = get_section(_name)

    rule:
        name:
            f"section_{_name}"
        input:
            **{group: SECTION_INPUTS[group] for group in _section.inputs},
            **{f"needs_{need}": section_folder(STUDY, need) for need in _section.needs},
        output:
            table=f"results/tables/{STUDY}/{_name}.parquet",
            folder=report(
                directory(section_folder(STUDY, _name)),
                patterns=["figures/{figure}.png", "{table}.csv"],
                caption="../report/section.rst",
                category=_section.title,
            ),
        log:
            f"logs/report/{STUDY}/{_name}.log",
        params:
            name=_name,
            config=canonical_json(section_config(_section, config)),
            args=section_args(_section, STUDY, SECTION_INPUTS, variant_checkpoints()),
            code=source_hash([module_file(_section.aggregate.__module__)]),
            caption=rst_text(_section.description),
        resources:
            gpu=int(_section.gpu),
        group:
            # on a cluster the CPU sections are one job; a GPU section is a job of its own (in the `gpu` group it
            # would join every (data set, model, method) it reads into one serial group job), and so is the page,
            # which reads it (a group with a job that waits on a job outside it hits Snakemake's "Out of jobs
            # ready to be started", snakemake#823)
            None if _section.gpu else "report"
        conda:
            "../../environment.yml"
        shell:
            "salbench section {params.name} --config-json {params.config:q} {params.args}"
            " --out {output.folder} --table {output.table} > {log} 2>&1"


rule report:
    input:
        sections=[section_folder(STUDY, name) for name in SECTION_NAMES],
        # requested, so that a deleted or damaged section table reruns its section (Snakemake reruns a job for
        # missing outputs only when someone asks for them)
        tables=[f"results/tables/{STUDY}/{name}.parquet" for name in SECTION_NAMES],
        results=SECTION_RESULTS,
    output:
        html=f"reports/{STUDY}/index.html",
    log:
        f"logs/report/{STUDY}.log",
    params:
        config=canonical_json({"study": STUDY, "methods": config["methods"]}),
        sections=[f"{name}={section_folder(STUDY, name)}" for name in SECTION_NAMES],
        code=f"{source_hash(['report/assemble.py'])}+{templates_hash()}",
    conda:
        "../../environment.yml"
    shell:
        "salbench report --config-json {params.config:q} --sections {params.sections} --html {output.html} > {log} 2>&1"


rule publish:
    input:
        html=f"reports/{STUDY}/index.html",
        summary=f"results/tables/{STUDY}/leaderboard.parquet",
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
