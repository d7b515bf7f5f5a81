"""Report sections as registry entries: importing this package registers every section (cheap: no torch).

Every module of this package except :mod:`.base` declares one section (see :mod:`.base` for the contract) and is
imported here, so adding a section is one module, one template (``report/templates/sections/<name>.html.j2``) and
one test.
"""

import importlib
import pkgutil

from .base import (CONTEXT_FILE, INPUT_GROUPS, MAIN_TABLE, SECTIONS, Section, SectionContext,  # noqa: F401
                   describe_sections, get_section, list_sections, register_section, run_section)

for _module in sorted(m.name for m in pkgutil.iter_modules(__path__)):
    if _module != "base" and not _module.startswith("_"):
        importlib.import_module(f"{__name__}.{_module}")

__all__ = ["CONTEXT_FILE", "INPUT_GROUPS", "MAIN_TABLE", "SECTIONS", "Section", "SectionContext",
           "describe_sections", "get_section", "list_sections", "register_section", "run_section"]
