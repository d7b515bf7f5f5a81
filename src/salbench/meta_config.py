"""The study config's ``meta_evaluation`` section: checks beyond the schema, and the metric grids' settings.

Torch-free (the workflow imports it when it parses the Snakefile). The section names a few cheap methods and
models for the MetaQuantus meta-evaluation (:mod:`salbench.metrics.meta_evaluation`) and, per metric, a grid of
hyperparameter values for the resilient ranks (:mod:`salbench.report.resilience`). The grid lives here, not in
``metrics.<name>``, so that declaring one does not re-run every score job.
"""

from __future__ import annotations

import itertools
from typing import Any, Mapping

from .params import ConfigError, canonical_json

#: the four components of the meta-consistency vector m, in the paper's order (torch-free, for the report too)
COMPONENTS = ("IAC_NR", "IAC_AR", "IEC_NR", "IEC_AR")

SECTION = "meta_evaluation"


def grid_settings(grid: Mapping[str, list[Any]]) -> list[dict[str, Any]]:
    """Every combination of a grid's values, ``{param: value}``, in the declared order (one empty one for none)."""
    names = list(grid)
    return [dict(zip(names, values)) for values in itertools.product(*(grid[name] for name in names))]


def setting_label(setting: Mapping[str, Any]) -> str:
    """A setting as text for tables, e.g. ``baseline=black,steps=8`` (``default`` for the metric's own)."""
    return ",".join(f"{k}={canonical_json(v)}" for k, v in setting.items()) or "default"


def check_meta_config(config: Mapping[str, Any], catalog: Mapping[str, Any]) -> None:
    """Raise a :class:`ConfigError` naming the key when the section names an unknown method, model, data set,
    metric or metric parameter (the schema checks the types). Cheap: the Snakefile runs it at every parse."""
    section = config.get(SECTION)
    if section is None:  # no section, no meta-evaluation
        return
    for key, known in (("methods", config["methods"]), ("models", config["models"]), ("datasets", config["datasets"])):
        for name in section.get(key, []):
            if name not in known:
                raise ConfigError(f"config key '{SECTION}.{key}': {name!r} is not a configured {key[:-1]}; "
                                  f"allowed values: {', '.join(sorted(known))}")
    if section.get("enabled", True) and len(section.get("methods", [])) < 2:
        raise ConfigError(f"config key '{SECTION}.methods': the meta-evaluation needs at least 2 methods "
                          f"(3 or more recommended)")
    for metric, grid in (section.get("grids") or {}).items():
        if metric not in config["metrics"]:
            raise ConfigError(f"config key '{SECTION}.grids': {metric!r} is not a configured metric; "
                              f"allowed values: {', '.join(sorted(config['metrics']))}")
        registered = config["metrics"][metric]["metric"]
        defaults = catalog["metrics"][registered]["params"]
        for param in grid:
            if param not in defaults:
                raise ConfigError(f"config key '{SECTION}.grids.{metric}.{param}' is not a parameter of "
                                  f"{registered!r}; allowed keys: {', '.join(sorted(defaults)) or '(none)'}")


def check_meta_grid_values(config: Mapping[str, Any]) -> None:
    """Build every setting of every grid, so that a value the metric refuses fails before any job, naming the key.

    Imports the metric registry (and torch): for the pre-run check (``check_registry_params``), not the Snakefile.
    """
    from .metrics import create_metric
    from .params import ParamError

    for metric, grid in ((config.get(SECTION) or {}).get("grids") or {}).items():
        spec = config["metrics"][metric]
        for setting in grid_settings(grid):
            try:
                create_metric(spec["metric"], **{**spec.get("params", {}), **setting})
            except ParamError as err:
                raise ConfigError(f"config key '{SECTION}.grids.{metric}' ({setting_label(setting)}): {err}") from err
