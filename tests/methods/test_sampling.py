"""The counter-based row draws: a hand-computed hash, batch independence, independent streams, distributions."""

import math

import pytest
import scipy.stats
import torch

from salbench.methods.sampling import RowSampler, mix32, mix_seed


def python_mix32(z: int) -> int:
    """Wellons' 2-round 32-bit hash in plain Python integers (the reference for the tensor version)."""
    z ^= z >> 16
    z = (z * 0x21F0AAAD) & 0xFFFFFFFF
    z ^= z >> 15
    z = (z * 0x735A2D97) & 0xFFFFFFFF
    return z ^ (z >> 15)


def test_tensor_hash_equals_plain_integer_arithmetic_without_overflow():
    values = [0, 1, 2, 12345, 2**31 - 1, 2**31, 2**32 - 1]
    got = mix32(torch.tensor(values, dtype=torch.int64)).tolist()
    assert got == [python_mix32(v) for v in values]
    assert all(0 <= g < 2**32 for g in got)


def test_bits_follow_the_documented_construction():
    x = torch.rand(2, 3, 4, 4, generator=torch.Generator().manual_seed(0))
    sampler = RowSampler(x, seed=3)
    bits = sampler.bits(torch.tensor([1]), torch.tensor([2]), (5,), stream=4)[0].tolist()
    key = mix_seed(sampler.seeds[1], 2)
    lo, hi = key & 0xFFFFFFFF, key >> 32
    assert bits == [python_mix32(python_mix32(python_mix32(j ^ lo) ^ hi) ^ 4) for j in range(5)]


def test_rows_do_not_depend_on_the_batch_they_are_drawn_in():
    x = torch.rand(4, 3, 8, 8, generator=torch.Generator().manual_seed(1))
    full = RowSampler(x, 0).normal(torch.tensor([0, 1, 2, 3]), torch.tensor([5, 5, 5, 5]), (3, 8, 8))
    alone = RowSampler(x[2:3], 0).normal(torch.tensor([0]), torch.tensor([5]), (3, 8, 8))
    assert torch.equal(full[2], alone[0])
    assert not torch.equal(full[0], full[1])  # the item's content keys its row


def test_streams_samples_and_kinds_are_uncorrelated():
    x = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(2))
    sampler = RowSampler(x, 0)
    zero = torch.tensor([0])
    draws = [sampler.uniform(zero, zero, (3, 32, 32)), sampler.uniform(zero, zero, (3, 32, 32), stream=1),
             sampler.uniform(zero, torch.tensor([1]), (3, 32, 32)), sampler.normal(zero, zero, (3, 32, 32))]
    flat = torch.stack([d.flatten() for d in draws]).double()
    corr = torch.corrcoef(flat)
    off_diagonal = corr[~torch.eye(len(draws), dtype=torch.bool)]
    assert off_diagonal.abs().max() < 4 / math.sqrt(flat.shape[1])  # ~4 standard errors of a zero correlation


@pytest.mark.parametrize("kind, distribution", [("uniform", "uniform"), ("normal", "norm")])
def test_draws_follow_their_distribution(kind, distribution):
    x = torch.rand(3, 1, 1, 1, generator=torch.Generator().manual_seed(3))
    sampler = RowSampler(x, 9)
    values = getattr(sampler, kind)(torch.tensor([0, 1, 2]), torch.tensor([0, 0, 7]), (20000,)).flatten().double()
    assert scipy.stats.kstest(values.numpy(), distribution).pvalue > 1e-3
    if kind == "uniform":
        assert values.min() >= 0 and values.max() < 1


def test_device_key_table_and_shared_hash_draw_what_the_host_keys_draw():
    """Keys looked up in the per-batch table (no host round trip), and several streams and shapes drawn from one
    row hash (``Rows``), give bit for bit the draws of the per-call host keys."""
    x = torch.rand(3, 3, 5, 7, generator=torch.Generator().manual_seed(4))
    items, samples = torch.tensor([2, 0, 0, 1, 2]), torch.tensor([5, 0, 3, 1, 2])
    host, table = RowSampler(x, 8), RowSampler(x, 8, n_samples=6)
    shape = (3, 5, 7)
    for kind in ("bits", "uniform", "normal"):
        for stream in (0, 2):
            assert torch.equal(getattr(table, kind)(items, samples, shape, stream),
                               getattr(host, kind)(items, samples, shape, stream))
    rows = table.rows(items, samples, 3 * 5 * 7)
    assert torch.equal(rows.uniform((2,)), host.uniform(items, samples, (2,)))
    assert torch.equal(rows.uniform(shape, stream=1), host.uniform(items, samples, shape, stream=1))
    assert torch.equal(rows.normal((4, 3), stream=1), host.normal(items, samples, (4, 3), stream=1))
    with pytest.raises(IndexError):
        table.keys(torch.tensor([0]), torch.tensor([6]))  # beyond the table's n_samples
