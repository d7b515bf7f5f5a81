"""Where and how a job runs: the device it computes on and the seeds that make it reproducible.

Kept apart from :mod:`salbench.jobs` so that a job needing only these (the layer-wise clusters) does not
depend, through the rule's source hash, on every module the other jobs import.
"""

from __future__ import annotations

import os
import random

import numpy as np
import torch

from .provenance import set_deterministic_algorithms


def resolve_device(device: str) -> str:
    """"auto" -> "cuda" when a GPU is visible, else "cpu"; "cuda" without a GPU is an error."""
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError(f"device {device!r} requested but no CUDA GPU is visible (use device: auto or cpu)")
    return device


def seed_everything(seed: int) -> None:
    """Seed Python, numpy and torch (CPU and CUDA) and ask torch for deterministic algorithms.

    On the CPU every job is bitwise reproducible. On a GPU, cuDNN's autotuner is off and its deterministic
    kernels are on, cuBLAS gets a fixed workspace, and ops without a deterministic CUDA kernel warn instead
    of failing (``warn_only``): repeated runs on the same GPU, driver and library versions match, except
    where such a warning was logged. The settings are recorded in every store's ``provenance``.
    """
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # read when cuBLAS starts, before any GPU op
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    torch.backends.cudnn.benchmark = False
    torch.backends.cudnn.deterministic = True
    if torch.cuda.is_available():  # CPU kernels are deterministic already (and the mode fills every torch.empty)
        set_deterministic_algorithms(True, warn_only=True)
