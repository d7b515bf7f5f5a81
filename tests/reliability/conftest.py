"""A tiny study and one uninterrupted reference run of it, shared by the reliability tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from .helpers import child_env, make_study, run_jobs, study_jobs


@pytest.fixture(scope="session")
def study(tmp_path_factory) -> Path:
    return make_study(tmp_path_factory.mktemp("study"))


@pytest.fixture(scope="session")
def reference(study, tmp_path_factory) -> Path:
    """Folder of an uninterrupted run of every method's saliency and score jobs on :func:`study`."""
    out = tmp_path_factory.mktemp("reference")
    result = run_jobs(study_jobs(study, out), env=child_env(PYTHONHASHSEED="1"))
    assert result.returncode == 0, result.stderr[-3000:]
    return out
