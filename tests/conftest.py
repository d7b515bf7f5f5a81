"""Shared test setup: deterministic torch on the CPU, few threads; a headless browser for the browser tests."""

import pytest
import torch
from browser import chromium_path, launch


@pytest.fixture(autouse=True)
def _seeded_torch():
    torch.manual_seed(0)
    torch.set_num_threads(2)
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
