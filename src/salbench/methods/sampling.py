"""Seeded random draws that depend only on (seed, item content, sample index, stream).

Sampling methods (SmoothGrad noise, expected-gradients references, random baselines, max-sensitivity's
noise) evaluate ``items x samples`` rows in chunks. Row ``(item, sample)`` gets a 63-bit key from the item's
content hash, the seed and the sample index, and each of its streams a 64-bit key hashed from that. A
stream's draws are SplitMix64 (Steele, Lea & Flood 2014) started at the stream key: counter ``c`` gives
``mix64(key + (c + 1) * golden)``, 64 bits that make two 24-bit uniforms (or one Box-Muller pair of
normals). It is computed with int64 tensor ops wherever the inputs live: a map never depends on the batch it
was computed in or the chunk size, all rows of a chunk are drawn in a dozen vectorised passes (no per-row
generator), and the integers are the same on every device (int64 tensor arithmetic wraps modulo 2**64; the
normal draws' log/cos/sqrt may differ in the last bits between a CPU and a GPU). A method that knows its
sample count makes every row's key once per batch (``RowSampler(..., n_samples=n)``: one host-to-device
copy) and every stream's start once, so its chunks never wait for the device and only hash their words.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from .controls import item_seeds

_MASK64 = (1 << 64) - 1
_MASK24 = (1 << 24) - 1
_GOLDEN = 0x9E3779B97F4A7C15
#: SplitMix64's finaliser: (shift, multiplier) rounds, then a last shift
_ROUNDS = ((30, 0xBF58476D1CE4E5B9), (27, 0x94D049BB133111EB))
_LAST_SHIFT = 31
#: odd constant that tags a row's streams before hashing (Steele et al.'s second gamma)
_STREAM_GAMMA = 0xD1B54A32D192ED03


def _signed(value: int) -> int:
    """A 64-bit unsigned value as the int64 with the same bits."""
    return value - (1 << 64) if value >= 1 << 63 else value


def mix_seed(item_seed: int, sample: int) -> int:
    """A 63-bit key for row ``(item, sample)``: the SplitMix64 finaliser of ``item_seed + (sample + 1) * golden``."""
    z = (item_seed + (sample + 1) * _GOLDEN) & _MASK64
    for shift, multiplier in _ROUNDS:
        z = ((z ^ (z >> shift)) * multiplier) & _MASK64
    return (z ^ (z >> _LAST_SHIFT)) >> 1


#: the shifts as 0-dim tensors: torch's CPU kernel for an int64 shifted by a Python int is not vectorised
#: (about 4x slower than xor or mul), the one for a tensor scalar is (made once: no tensor per call)
_SHIFTS = {shift: torch.tensor(shift) for shift in (16, 27, 30, 31, 40)}


def _shift_right(z: torch.Tensor, shift: int) -> torch.Tensor:
    """``z >> shift`` (arithmetic), ``shift`` one of :data:`_SHIFTS`."""
    return z >> _SHIFTS[shift]


def _xor_shift_right_(z: torch.Tensor, shift: int) -> torch.Tensor:
    """``z ^= z >>> shift`` (logical shift of the 64 bits) in place."""
    return z.bitwise_xor_(_shift_right(z, shift).bitwise_and_((1 << (64 - shift)) - 1))


def mix64_(z: torch.Tensor) -> torch.Tensor:
    """SplitMix64's finaliser of each value of an int64 tensor, in place (the bits as unsigned 64-bit words)."""
    for shift, multiplier in _ROUNDS:
        _xor_shift_right_(z, shift).mul_(_signed(multiplier))
    return _xor_shift_right_(z, _LAST_SHIFT)


def stream_start(keys: torch.Tensor, tag: int) -> torch.Tensor:
    """The 64-bit start of stream ``tag`` of rows with ``keys``: ``mix64(key ^ (tag + 1) * gamma)``."""
    return mix64_(keys ^ _signed((tag + 1) * _STREAM_GAMMA & _MASK64))


class Rows:
    """The draws of a set of rows (one 63-bit key each): every ``(stream, kind)`` is its own SplitMix64 stream.

    ``n`` values of a shape come from ``h = ceil(n / 2)`` 64-bit words: value ``j < h`` from the high 24 bits
    (bits 40-63) of word ``j``, value ``h + j`` from the middle 24 bits (bits 16-39) of word ``j``.
    """

    def __init__(self, sampler: RowSampler, items: torch.Tensor, samples: torch.Tensor) -> None:
        self.sampler, self.items, self.samples = sampler, items, samples
        #: the rows' keys where the sampler has no key table (hashed on the host once, for every stream)
        self.keys = None if sampler.table is not None else sampler.keys(items, samples)

    def words(self, count: int, tag: int) -> torch.Tensor:
        """SplitMix64 words ``[R, count]`` of the stream ``tag`` of each row."""
        if self.keys is None:
            start = self.sampler.stream_starts(tag)[self.items, self.samples]
        else:
            start = stream_start(self.keys, tag)
        return mix64_(start.view(-1, 1) + self.sampler.counters(count))

    def _halves(self, count: int, tag: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The high and middle 24-bit fields (int64 ``[R, ceil(count / 2)]``) of the stream's words."""
        z = self.words((count + 1) // 2, tag)
        return _shift_right(z, 40).bitwise_and_(_MASK24), _shift_right(z, 16).bitwise_and_(_MASK24)

    def uniform(self, shape: tuple[int, ...], stream: int = 0) -> torch.Tensor:
        """Float32 draws ``[R, *shape]`` from U[0, 1) (24-bit resolution: exact in float32). ``uniform`` and
        ``normal`` of one row use different streams, whatever their ``stream`` numbers."""
        count = math.prod(shape)
        high, middle = self._halves(count, 2 * stream)
        out = torch.cat([high, middle[:, : count - high.shape[1]]], dim=1).to(torch.float32).mul_(2.0**-24)
        return out.view(-1, *shape)

    def normal(self, shape: tuple[int, ...], stream: int = 0) -> torch.Tensor:
        """Float32 draws ``[R, *shape]`` from N(0, 1): the Box-Muller pair ``r cos t, r sin t`` of each word,
        ``r = sqrt(-2 log u1)`` with ``u1`` in (0, 1] from the high field and ``t = 2 pi u2`` from the middle one."""
        count = math.prod(shape)
        high, middle = self._halves(count, 2 * stream + 1)
        radius = high.add_(1).to(torch.float32).mul_(2.0**-24).log_().mul_(-2).sqrt_()
        angle = middle.to(torch.float32).mul_(2 * math.pi * 2.0**-24)
        half = radius.shape[1]
        out = torch.empty((len(radius), count), dtype=torch.float32, device=radius.device)
        torch.mul(radius, torch.cos(angle), out=out[:, :half])
        out[:, half:] = (radius * angle.sin_())[:, : count - half]
        return out.view(-1, *shape)


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
        self._counters = torch.empty((1, 0), dtype=torch.int64, device=self.device)
        self._starts: dict[int, torch.Tensor] = {}

    def stream_starts(self, tag: int) -> torch.Tensor:
        """The starts of stream ``tag`` of every row of the key table (made once per sampler and stream)."""
        if tag not in self._starts:
            assert self.table is not None
            self._starts[tag] = stream_start(self.table, tag)
        return self._starts[tag]

    def counters(self, count: int) -> torch.Tensor:
        """``(c + 1) * golden`` modulo 2**64 for ``c < count`` (int64 ``[1, count]``, made once per sampler)."""
        if self._counters.shape[1] < count:
            words = np.arange(1, count + 1, dtype=np.uint64) * np.uint64(_GOLDEN)  # unsigned: wraps by definition
            self._counters = torch.from_numpy(words.view(np.int64)).to(self.device).view(1, -1)
        return self._counters[:, :count]

    def keys(self, items: torch.Tensor, samples: torch.Tensor) -> torch.Tensor:
        """The 63-bit keys ``[R]`` (int64, on the device) of rows ``(items[r], samples[r])``."""
        if self.table is not None:
            return self.table[items, samples]
        keys = [mix_seed(self.seeds[i], s) for i, s in zip(items.tolist(), samples.tolist())]
        return torch.tensor(keys, dtype=torch.int64, device=self.device)

    def rows(self, items: torch.Tensor, samples: torch.Tensor) -> Rows:
        """The draws of rows ``(items[r], samples[r])``, for any number of streams and shapes."""
        return Rows(self, items, samples)

    def uniform(self, items: torch.Tensor, samples: torch.Tensor, shape: tuple[int, ...], stream: int = 0
                ) -> torch.Tensor:
        """Float32 draws ``[R, *shape]`` from U[0, 1) (see :meth:`Rows.uniform`)."""
        return self.rows(items, samples).uniform(shape, stream)

    def normal(self, items: torch.Tensor, samples: torch.Tensor, shape: tuple[int, ...], stream: int = 0
               ) -> torch.Tensor:
        """Float32 draws ``[R, *shape]`` from N(0, 1) (see :meth:`Rows.normal`)."""
        return self.rows(items, samples).normal(shape, stream)
