"""Provenance recorded in every store's attrs: versions, git revision, host, device, hashes."""

from __future__ import annotations

import hashlib
import importlib.metadata
import platform
import socket
import subprocess
from pathlib import Path

TRACKED_PACKAGES = ("salbench", "torch", "torchvision", "timm", "captum", "zennit", "grad-cam", "numpy", "xarray", "zarr")


def file_sha256(path: str | Path, chunk_size: int = 1 << 20) -> str:
    """sha256 hex digest of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk_size):
            digest.update(block)
    return digest.hexdigest()


def package_versions() -> dict[str, str]:
    """Installed versions of the packages whose behaviour shapes the numbers."""
    versions = {}
    for name in TRACKED_PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def git_revision(cwd: str | Path | None = None) -> str:
    """``git describe``-style revision of the working tree (``-dirty`` when modified), or "unknown"."""
    try:
        out = subprocess.run(
            ["git", "describe", "--always", "--dirty", "--abbrev=12"],
            cwd=cwd or Path(__file__).parent, capture_output=True, text=True, timeout=10, check=True,
        )
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def device_description(device: str) -> str:
    """Human-readable description of the torch device a job ran on."""
    if device.startswith("cuda"):
        import torch

        return f"{device} ({torch.cuda.get_device_name(torch.device(device))})"
    return f"{device} ({platform.processor() or platform.machine()})"


def set_deterministic_algorithms(enabled: bool, warn_only: bool) -> None:
    """torch's deterministic-algorithm switch for eager code, as ``torch.use_deterministic_algorithms`` sets it.

    The public function also sets torch.compile's inductor flag, and importing that config imports
    ``torch._inductor`` and ``torch._dynamo``: ~1.3 s in every job, for a compiler salbench never uses.
    """
    import torch

    torch._C._set_deterministic_algorithms(enabled, warn_only=warn_only)


def determinism() -> dict[str, object]:
    """torch's reproducibility settings at the time of the call (see ``salbench.jobs.seed_everything``)."""
    import os

    import torch

    return {
        "deterministic_algorithms": torch.are_deterministic_algorithms_enabled(),
        "deterministic_warn_only": torch.is_deterministic_algorithms_warn_only_enabled(),
        "cudnn_deterministic": bool(torch.backends.cudnn.deterministic),
        "cudnn_benchmark": bool(torch.backends.cudnn.benchmark),
        "cublas_workspace_config": os.environ.get("CUBLAS_WORKSPACE_CONFIG", ""),
        "num_threads": torch.get_num_threads(),
    }


def plugin_records() -> dict[str, dict[str, str]]:
    """The plugins (the user's own methods, metrics, checks, models) this job loaded: ``"<kind>:<name>"`` ->
    package, version and source hash (:func:`salbench.plugins.loaded_plugins`; empty without plugins)."""
    from .plugins import loaded_plugins

    return loaded_plugins()


def provenance(device: str) -> dict[str, object]:
    """Everything a reader needs to know where a result came from (JSON-serialisable)."""
    return {
        "versions": package_versions(),
        "plugins": plugin_records(),
        "git_revision": git_revision(),
        "python": platform.python_version(),
        "host": socket.gethostname(),
        "platform": platform.platform(),
        "device": device_description(device),
        "determinism": determinism(),
    }
