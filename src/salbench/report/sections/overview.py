"""Overview: what the study ran and how, read from the results themselves.

Provenance (library versions, git revision, seeds, devices, hosts and data manifests) comes from the maps stores'
and data stores' attributes, so it describes the maps the report shows, not the code that renders it. Then the
runtime per method (summed over its saliency jobs), every saliency job's registered method, params, seed, device,
runtime and checkpoint hash, and the study's config as YAML. Its rule reads the whole config (it shows it), so
any config change reruns it. The main table has one row per saliency job.
"""

from __future__ import annotations

from typing import Any

from .base import ALL_CONFIG_KEYS, Section, SectionContext, register_section

NAME = "overview"


def aggregate(ctx: SectionContext) -> dict[str, Any]:
    import yaml

    from ...store import open_store
    from ..section_inputs import bootstrap_settings, records
    from ..tables import runs_table, runtime_by_method

    runs = runs_table(dict(open_store(path).attrs) for path in ctx.files("maps"))
    if runs.empty:
        return {"empty": "No saliency maps to describe."}
    csv = ctx.write_table(runs)
    manifests = {name: str(open_store(path).attrs.get("manifest_sha256", "unknown"))
                 for name, path in ctx.data_stores().items()}
    n_boot, seed = bootstrap_settings(ctx.config)

    def distinct(column: str) -> str:
        return ", ".join(sorted({str(v) for v in runs[column]})) or "unknown"

    provenance = [
        ("salbench", distinct("salbench")), ("torch", distinct("torch")), ("python", distinct("python")),
        ("git revision", distinct("git_revision")), ("seeds", distinct("seed")), ("devices", distinct("device")),
        ("hosts", distinct("host")),
        ("data manifests (sha256)", ", ".join(f"{d}: {sha[:12]}" for d, sha in manifests.items()) or "unknown"),
        ("bootstrap", f"{n_boot} resamples of items, seed {seed}, 95% percentile interval; ranks: the same "
                      "resample of items for every method (paired)"),
    ]
    return {
        "n_methods": int(runs["method"].nunique()), "n_datasets": int(runs["dataset"].nunique()),
        "n_models": int(runs["model"].nunique()), "n_jobs": len(runs),
        "provenance": [{"field": k, "value": v} for k, v in provenance],
        "runtimes": records(runtime_by_method(runs)),
        "runs": records(runs.assign(checkpoint=runs["checkpoint_sha256"].str[:12])),
        "config_yaml": yaml.safe_dump(ctx.config, sort_keys=False, default_flow_style=False, allow_unicode=True),
        "csv": csv,
        "by_method": {str(m): {"runs": records(part.drop(columns=["method"]))}
                      for m, part in runs.groupby("method", sort=True)},
    }


SECTION = register_section(Section(
    name=NAME, title="Overview and provenance", order=8, aggregate=aggregate,
    description="What the study ran and how: provenance read from the stores, runtime per method, every saliency "
                "job and the study's config",
    inputs=("maps", "data"), config_keys=ALL_CONFIG_KEYS,
))
