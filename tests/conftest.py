"""Shared test setup: deterministic torch on the CPU, few threads; a headless browser for the browser tests.

Under pytest-xdist (`make test` runs one worker per core), the tests that share an expensive session fixture run on
one worker (SHARED_FIXTURE_FILES)."""

import os

import pytest
import torch
from browser import chromium_path, launch


#: test files whose tests share an expensive session fixture: under pytest-xdist one worker runs each group, and
#: builds the fixture once
SHARED_FIXTURE_FILES = {
    **dict.fromkeys(["tests/workflow/test_workflow.py", "tests/workflow/test_report_sections.py",
                     "tests/workflow/test_slurm.py", "tests/workflow/test_worker_identity.py"],
                    "tiny_study"),  # finished_run and plain_run (tests/workflow/conftest.py)
    **dict.fromkeys(["tests/methods/test_on_trained_models.py", "tests/test_train.py"],
                    "trained_default"),  # the default models trained once (tests/trained.py)
}


@pytest.hookimpl(tryfirst=True, optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log):
    """pytest-xdist's scope scheduling with every test its own scope but the SHARED_FIXTURE_FILES groups. (xdist
    3.8's ``xdist_group`` marks do not group under pytest 9, whose node ids no longer read ``_nodeid``.) Scopes go
    out largest first, so the groups start at once, each on its own worker, while the other takes the rest."""
    from xdist.scheduler import LoadScopeScheduling

    class SharedFixtureScheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return SHARED_FIXTURE_FILES.get(nodeid.split("::", 1)[0], nodeid)

    return SharedFixtureScheduling(config, log)


#: torch threads per test: one per pytest-xdist worker (`make test` runs one worker per core), else two
THREADS = 1 if os.environ.get("PYTEST_XDIST_WORKER") else 2


@pytest.fixture(autouse=True)
def _seeded_torch():
    torch.manual_seed(0)
    torch.set_num_threads(THREADS)
    yield


@pytest.fixture(scope="session")
def browser():
    """A headless Chromium (playwright sync Browser); skipped with the reason when none can be installed here."""
    executable = chromium_path()
    if executable is None:
        pytest.skip("no Chromium: /usr/bin/chromium is missing and scripts/install-browser.sh needs root and apt-get")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = launch(playwright, executable)
        try:
            yield browser
        finally:
            browser.close()
