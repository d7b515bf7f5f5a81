"""Headless Chromium for the browser tests: Debian's chromium (installed by scripts/install-browser.sh) driven by
playwright, which cannot download its own browser on machines without general internet access."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
INSTALLER = ROOT / "scripts" / "install-browser.sh"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]


def chromium_path() -> str | None:
    """The system Chromium, installed first when missing and this process may install it; None when unavailable."""
    path = os.environ.get("SALBENCH_CHROMIUM", "/usr/bin/chromium")
    if os.access(path, os.X_OK):
        return path
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        return None
    done = subprocess.run([str(INSTALLER)], capture_output=True, text=True, timeout=900)
    return (done.stdout.strip() or None) if done.returncode == 0 else None


def launch(playwright, executable: str):
    """A headless Chromium browser from a started playwright."""
    return playwright.chromium.launch(executable_path=executable, headless=True, args=CHROMIUM_ARGS)
