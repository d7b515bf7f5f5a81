"""The study report: registered sections (:mod:`.sections`) aggregate the study's stores and tables, and
:mod:`.assemble` renders them into a static, self-contained HTML folder.

Cheap to import (no torch, no matplotlib): the Snakefile imports the section registry on every DAG build.
"""
