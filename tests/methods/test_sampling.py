"""The counter-based row draws: a hand-computed hash, batch independence, independent streams, distributions."""

import math

import pytest
import scipy.stats
import torch

from salbench.methods.sampling import RowSampler, mix64_, mix_seed

MASK64 = (1 << 64) - 1


def python_mix64(z: int) -> int:
    """SplitMix64's finaliser in plain Python integers (the reference for the tensor version)."""
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK64
    return z ^ (z >> 31)


def as_unsigned(values: list[int]) -> list[int]:
    return [v & MASK64 for v in values]


def as_signed(values: list[int]) -> list[int]:
    return [v - (1 << 64) if v >= 1 << 63 else v for v in values]


def test_tensor_hash_equals_plain_integer_arithmetic_modulo_two_to_the_64():
    """The int64 tensor ops (wrapping products, arithmetic shifts masked to logical ones) give the unsigned hash."""
    values = [0, 1, 2, 12345, 2**31, 2**32 - 1, 2**63 - 1, 2**63, 2**64 - 1] + [
        int.from_bytes(bytes(range(k, k + 8)), "little") for k in range(0, 200, 8)]
    got = as_unsigned(mix64_(torch.tensor(as_signed(values), dtype=torch.int64)).tolist())
    assert got == [python_mix64(v) for v in values]


def test_draws_follow_the_documented_construction():
    x = torch.rand(2, 3, 4, 4, generator=torch.Generator().manual_seed(0))
    sampler = RowSampler(x, seed=3)
    key = mix_seed(sampler.seeds[1], 2)

    def words(tag: int, count: int) -> list[int]:
        start = python_mix64(key ^ ((tag + 1) * 0xD1B54A32D192ED03 & MASK64))
        return [python_mix64((start + (c + 1) * 0x9E3779B97F4A7C15) & MASK64) for c in range(count)]

    row = torch.tensor([1]), torch.tensor([2])
    high_middle = [(w >> 40) & 0xFFFFFF for w in words(2 * 4, 3)] + [(w >> 16) & 0xFFFFFF for w in words(2 * 4, 3)]
    assert sampler.uniform(*row, (5,), stream=4)[0].tolist() == [v / 2**24 for v in high_middle[:5]]
    pairs = [(math.sqrt(-2 * math.log(((w >> 40 & 0xFFFFFF) + 1) / 2**24)), 2 * math.pi * (w >> 16 & 0xFFFFFF) / 2**24)
             for w in words(2 * 1 + 1, 2)]
    expected = [r * math.cos(t) for r, t in pairs] + [r * math.sin(t) for r, t in pairs]
    torch.testing.assert_close(sampler.normal(*row, (2, 2), stream=1)[0].flatten(),
                               torch.tensor(expected, dtype=torch.float32), rtol=0, atol=2e-6)


def test_counters_wrap_like_unsigned_integers():
    sampler = RowSampler(torch.zeros(1, 1), seed=0)
    got = as_unsigned(sampler.counters(1000)[0].tolist())
    assert got == [(c + 1) * 0x9E3779B97F4A7C15 & MASK64 for c in range(1000)]
    assert torch.equal(sampler.counters(10), sampler.counters(1000)[:, :10])


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
    row's keys (``Rows``), give bit for bit the draws of the per-call host keys."""
    x = torch.rand(3, 3, 5, 7, generator=torch.Generator().manual_seed(4))
    items, samples = torch.tensor([2, 0, 0, 1, 2]), torch.tensor([5, 0, 3, 1, 2])
    host, table = RowSampler(x, 8), RowSampler(x, 8, n_samples=6)
    shape = (3, 5, 7)
    for kind in ("uniform", "normal"):
        for stream in (0, 2):
            assert torch.equal(getattr(table, kind)(items, samples, shape, stream),
                               getattr(host, kind)(items, samples, shape, stream))
    rows = table.rows(items, samples)
    assert torch.equal(rows.uniform((2,)), host.uniform(items, samples, (2,)))
    assert torch.equal(rows.uniform(shape, stream=1), host.uniform(items, samples, shape, stream=1))
    assert torch.equal(rows.normal((4, 3), stream=1), host.normal(items, samples, (4, 3), stream=1))
    with pytest.raises(IndexError):
        table.keys(torch.tensor([0]), torch.tensor([6]))  # beyond the table's n_samples
