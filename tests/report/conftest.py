"""The synthetic study, built once per session for every report test module."""

import pytest

from salbench.report import build_report

from .synthetic import make_study


@pytest.fixture(scope="session")
def built(tmp_path_factory):
    """(study, index.html) of the synthetic study's report."""
    study = make_study(tmp_path_factory.mktemp("study"))
    return study, build_report(**study.kwargs)
