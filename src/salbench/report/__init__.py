"""The study report: summary tables, seaborn figures and a static, self-contained HTML folder.

Cheap to import (no torch): it reads only zarr stores and parquet score tables.
"""

from .build import build_report

__all__ = ["build_report"]
