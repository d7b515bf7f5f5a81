"""Seeded random draws that depend only on (seed, item content, sample index, stream).

Sampling methods (SmoothGrad noise, expected-gradients references, random baselines, max-sensitivity's
noise) evaluate ``items x samples`` rows in chunks. Row ``(item, sample)`` gets a 63-bit key from the item's
content hash, the seed and the sample index; its draws are a counter-based hash of (key, stream, element
index), computed with integer tensor ops wherever the inputs live. So a map never depends on the batch it
was computed in or the chunk size, all rows of a chunk are drawn in a few vectorised ops (no per-row
generator), and the integers are the same on every device (the normal draws' log/cos/sqrt may differ in the
last bits between a CPU and a GPU). A method that knows its sample count makes every row's key once per batch
(``RowSampler(..., n_samples=n)``: one host-to-device copy), so its chunks never wait for the device; the
element hash that does not depend on the stream is made once per chunk and shared by its streams
(:class:`Rows`), e.g. the two uniform streams of a normal draw.
"""

from __future__ import annotations

import math

import torch

from .controls import item_seeds

_MASK64 = (1 << 64) - 1
_MASK32 = (1 << 32) - 1
_GOLDEN = 0x9E3779B97F4A7C15
#: multipliers of Wellons' 2-round 32-bit mixer (hash-prospector, bias ~0.107); both below 2**31, so every
#: product of a 32-bit value fits in int64 without overflow
_MUL1, _MUL2 = 0x21F0AAAD, 0x735A2D97


def mix_seed(item_seed: int, sample: int) -> int:
    """A 63-bit key for row ``(item, sample)``: the SplitMix64 finaliser of ``item_seed + (sample + 1) * golden``."""
    z = (item_seed + (sample + 1) * _GOLDEN) & _MASK64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK64
    return (z ^ (z >> 31)) >> 1


def mix32(z: torch.Tensor) -> torch.Tensor:
    """Wellons' 32-bit integer hash of each value of an int64 tensor holding values in [0, 2**32)."""
    z = z ^ (z >> 16)
    z = (z * _MUL1) & _MASK32
    z = z ^ (z >> 15)
    z = (z * _MUL2) & _MASK32
    return z ^ (z >> 15)


def _mix32_(z: torch.Tensor) -> torch.Tensor:
    """:func:`mix32` in place (``z`` must be a fresh tensor of the caller's): no temporaries but the shifts."""
    z.bitwise_xor_(z >> 16).mul_(_MUL1).bitwise_and_(_MASK32)
    z.bitwise_xor_(z >> 15).mul_(_MUL2).bitwise_and_(_MASK32)
    return z.bitwise_xor_(z >> 15)


class Rows:
    """The draws of a set of rows, for elements ``j < size``: the hash of (key, j) is made once and shared
    by every stream and shape drawn from it (see :meth:`RowSampler.bits` for the construction)."""

    def __init__(self, key: torch.Tensor, j: torch.Tensor) -> None:
        # mix32(mix32(j ^ lo) ^ hi): the part of every element's hash that does not depend on the stream
        z = _mix32_(j ^ (key & _MASK32))
        self.prefix = _mix32_(z.bitwise_xor_(key >> 32))

    def _streams(self, shape: tuple[int, ...], streams: torch.Tensor) -> torch.Tensor:
        """Bits ``[S, R, *shape]`` of ``streams`` (an int64 tensor ``[S]``)."""
        count = math.prod(shape)
        prefix = self.prefix[:, :count].reshape(-1, *shape)
        return _mix32_(prefix.unsqueeze(0) ^ (streams & _MASK32).view(-1, *(1,) * prefix.dim()))

    def bits(self, shape: tuple[int, ...], stream: int = 0) -> torch.Tensor:
        """Uniform 32-bit integers (int64) ``[R, *shape]`` of ``stream``."""
        count = math.prod(shape)
        return _mix32_(self.prefix[:, :count].reshape(-1, *shape) ^ (stream & _MASK32))

    def uniform(self, shape: tuple[int, ...], stream: int = 0) -> torch.Tensor:
        """Float32 draws ``[R, *shape]`` from U[0, 1) (24-bit resolution: exact in float32). ``uniform`` and
        ``normal`` of one row use disjoint bit streams, whatever their ``stream`` numbers."""
        return self.bits(shape, 3 * stream).bitwise_right_shift_(8).to(torch.float32).mul_(2.0**-24)

    def normal(self, shape: tuple[int, ...], stream: int = 0) -> torch.Tensor:
        """Float32 draws ``[R, *shape]`` from N(0, 1) by the Box-Muller transform of two uniform streams
        (``3 stream + 1`` and ``3 stream + 2``, hashed together)."""
        both = self._streams(shape, torch.arange(3 * stream + 1, 3 * stream + 3, device=self.prefix.device))
        both = both.bitwise_right_shift_(8)
        both[0] += 1
        u1, u2 = both.to(torch.float64).mul_(2.0**-24).unbind(0)  # u1 in (0, 1], u2 in [0, 1)
        return (u1.log_().mul_(-2).sqrt_() * torch.cos(u2.mul_(2 * math.pi))).to(torch.float32)


class RowSampler:
    """Counter-based draws per row ``(item, sample)`` of a batch, the same whatever the batch or chunking.

    With ``n_samples``, the keys of every row ``(item, sample < n_samples)`` are made once, on the device:
    a chunk's draws then cost no host round trip (rows are looked up on the device); without it, each call
    hashes its rows' keys on the host (one device-to-host copy of ``items`` and ``samples`` on a GPU).
    """

    def __init__(self, inputs: torch.Tensor, seed: int, n_samples: int | None = None) -> None:
        self.seeds = item_seeds(inputs, seed)
        self.device = inputs.device
        self.table = None if n_samples is None else torch.tensor(
            [[mix_seed(s, k) for k in range(n_samples)] for s in self.seeds], dtype=torch.int64, device=self.device)
        self._j = torch.empty(0, dtype=torch.int64, device=self.device)

    def keys(self, items: torch.Tensor, samples: torch.Tensor) -> torch.Tensor:
        """The 63-bit keys ``[R]`` (int64, on the device) of rows ``(items[r], samples[r])``."""
        if self.table is not None:
            return self.table[items, samples]
        keys = [mix_seed(self.seeds[i], s) for i, s in zip(items.tolist(), samples.tolist())]
        return torch.tensor(keys, dtype=torch.int64, device=self.device)

    def rows(self, items: torch.Tensor, samples: torch.Tensor, size: int) -> Rows:
        """The draws of rows ``(items[r], samples[r])`` for shapes of at most ``size`` elements."""
        if len(self._j) < size:
            self._j = torch.arange(size, dtype=torch.int64, device=self.device)
        return Rows(self.keys(items, samples).view(-1, 1), self._j[:size].view(1, -1))

    def bits(self, items: torch.Tensor, samples: torch.Tensor, shape: tuple[int, ...], stream: int = 0
             ) -> torch.Tensor:
        """Uniform 32-bit integers (int64) ``[R, *shape]`` for rows ``(items[r], samples[r])``.

        Element ``j`` of row ``r`` in ``stream`` is ``mix32(mix32(mix32(j ^ lo) ^ hi) ^ stream)`` with
        ``(lo, hi)`` the two 32-bit halves of the row's key: different streams of one row are independent.
        """
        return self.rows(items, samples, math.prod(shape)).bits(shape, stream)

    def uniform(self, items: torch.Tensor, samples: torch.Tensor, shape: tuple[int, ...], stream: int = 0
                ) -> torch.Tensor:
        """Float32 draws ``[R, *shape]`` from U[0, 1) (see :meth:`Rows.uniform`)."""
        return self.rows(items, samples, math.prod(shape)).uniform(shape, stream)

    def normal(self, items: torch.Tensor, samples: torch.Tensor, shape: tuple[int, ...], stream: int = 0
               ) -> torch.Tensor:
        """Float32 draws ``[R, *shape]`` from N(0, 1) (see :meth:`Rows.normal`)."""
        return self.rows(items, samples, math.prod(shape)).normal(shape, stream)
