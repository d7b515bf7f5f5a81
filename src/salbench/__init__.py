"""salbench: a Snakemake-orchestrated reproducibility study of saliency methods.

Importing the top-level package is cheap (no torch): the Snakefile imports :mod:`salbench.config`
on every DAG build, including once per cluster job.
"""

__version__ = "0.1.0"
