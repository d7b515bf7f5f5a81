# salbench: a reproducibility study of saliency methods, as a Snakemake DAG.
# Without --configfile it runs the embedded default, config/config.yaml (loaded in common.smk, so
# that a --configfile study replaces the default instead of being merged into it).
# Wiring only: validation, input functions and targets live in workflow/rules/common.smk.
# Keep this cheap (no torch import, no directory scans): every cluster job re-parses it.
from snakemake.utils import min_version

min_version("9.0")


envvars:
    "PATH",


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/models.smk"
include: "workflow/rules/saliency.smk"
include: "workflow/rules/sanity.smk"
include: "workflow/rules/metrics.smk"
include: "workflow/rules/grid.smk"
include: "workflow/rules/layerwise.smk"
include: "workflow/rules/meta.smk"
include: "workflow/rules/report.smk"

# The warm worker (salbench.worker): a local run's jobs start in a process that imported torch and salbench once
# (same outputs and logs; SALBENCH_WORKER=off turns it off). Never for a cluster executor. A second `onstart`
# replaces the first, so this one runs common.smk's checks first.
_study_checks = globals().get("onstart")


onstart:
    if _study_checks is not None:
        _study_checks()
    from salbench.worker import start_worker

    start_worker(workflow.local_exec, shell=shell.get_executable())  # the jobs' shell: their environment


onsuccess:
    from salbench.worker import stop_worker

    stop_worker()


onerror:
    from salbench.worker import stop_worker

    stop_worker()


rule all:
    default_target: True
    input:
        final_outputs(),
        layerwise_outputs(),
        labelling_outputs(),
        layerwise_labels_output(),
