"""What workflow/rules/report.smk needs to generate one rule per report section (imported by the Snakefile:
cheap, no torch): each section's folder, its ``salbench section`` arguments and its caption for
``snakemake --report``."""

from __future__ import annotations

import re
import shlex

from .sections.base import Section

#: the input group whose entries name a (data set, model) pair: ``DATASET/MODEL=CHECKPOINT``
VARIANT_MODELS = "variant_models"


def section_folder(study: str, name: str) -> str:
    """A section's folder: ``results/sections/{study}/{name}``."""
    return f"results/sections/{study}/{name}"


def section_args(section: Section, study: str, inputs: dict[str, list[str]],
                 variant_models: dict[str, str]) -> str:
    """``--in GROUP FILE...`` per input group of the section (``variant_models``: ``DATASET/MODEL=PATH`` entries)
    and ``--needs NAME=FOLDER`` of the sections it reads, shell-quoted."""
    args: list[str] = []
    for group in section.inputs:
        files = ([f"{pair}={path}" for pair, path in variant_models.items()] if group == VARIANT_MODELS
                 else inputs[group])
        args += ["--in", group, *files]
    if section.needs:
        args += ["--needs", *(f"{need}={section_folder(study, need)}" for need in section.needs)]
    return " ".join(shlex.quote(str(a)) for a in args)


def rst_text(text: str) -> str:
    """Plain text as reStructuredText (a ``snakemake --report`` caption): its markup characters escaped, so that
    ``|x|`` is no substitution reference and ``*`` no emphasis."""
    return re.sub(r"([\\`*_|<>\[\]])", r"\\\1", text)
