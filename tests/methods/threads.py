"""A fixture running a test on one intra-op thread (the shared CPU makes two contending threads ~20x slower)."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
