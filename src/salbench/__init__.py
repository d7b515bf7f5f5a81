"""salbench: a Snakemake-orchestrated reproducibility study of saliency methods.

Importing the top-level package is cheap (no torch): the Snakefile imports :mod:`salbench.config`
on every DAG build, including once per cluster job. The Python API (:func:`explain`, :func:`evaluate`,
:mod:`salbench.api`) is imported on first use.
"""

from typing import Any

__version__ = "0.1.0"
__all__ = ["evaluate", "explain"]


def __getattr__(name: str) -> Any:
    """``salbench.explain`` and ``salbench.evaluate`` from :mod:`salbench.api`, imported when first asked for."""
    if name in __all__:
        from . import api

        return getattr(api, name)
    raise AttributeError(f"module 'salbench' has no attribute {name!r}")
