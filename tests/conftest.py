"""Shared test setup: deterministic torch on the CPU, few threads."""

import pytest
import torch


@pytest.fixture(autouse=True)
def _seeded_torch():
    torch.manual_seed(0)
    torch.set_num_threads(2)
    yield
