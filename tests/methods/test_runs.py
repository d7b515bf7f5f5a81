"""Item-major rows split into per-item runs and summed, against ``index_add_``."""

from __future__ import annotations

import torch

from salbench.methods.runs import add_runs_, item_runs, split_runs


def test_item_runs_split_rows_by_item():
    assert item_runs(0, 3, 5) == (0, [3])
    assert item_runs(3, 12, 5) == (0, [2, 5, 2])
    assert item_runs(10, 11, 5) == (2, [1])


def test_split_runs_skips_empty_runs():
    values = torch.arange(5.0)
    assert [(item, rows.tolist()) for item, rows in split_runs(3, [2, 0, 3], values)] == [
        (3, [0.0, 1.0]), (5, [2.0, 3.0, 4.0])]


def test_chunked_run_sums_equal_index_add():
    n_items, n, chunk = 4, 7, 5
    values = torch.randn(n_items * n, 2, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    expected = torch.zeros(n_items, 2, 3, dtype=torch.float64).index_add_(
        0, torch.arange(n_items).repeat_interleave(n), values)
    total = torch.zeros_like(expected)
    for start in range(0, n_items * n, chunk):
        stop = min(start + chunk, n_items * n)
        add_runs_(total, start, stop, n, values[start:stop])
    torch.testing.assert_close(total, expected, rtol=1e-12, atol=1e-12)
