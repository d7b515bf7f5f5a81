"""The registries' snapshot (``schemas/catalog.json``: every built-in method, metric, model and data set with its
defaults and source module), read without importing any registry.

Its own module so that code reading the snapshot (the report's sections) does not take the config validator's
imports, and with them the whole package, into its rules' source hashes (:mod:`salbench.sources`).
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Any

CATALOG_PATH = Path(__file__).resolve().parent / "schemas" / "catalog.json"


@lru_cache(maxsize=1)
def load_catalog() -> dict[str, dict[str, dict[str, Any]]]:
    """The snapshot as written by ``salbench catalog --write``."""
    return json.loads(CATALOG_PATH.read_text())
