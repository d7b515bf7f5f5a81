"""Seeded random draws that depend only on (seed, item content, sample index, stream).

Sampling methods (SmoothGrad noise, expected-gradients references, random baselines, max-sensitivity's
noise) evaluate ``items x samples`` rows in chunks. Row ``(item, sample)`` gets a 63-bit key from the item's
content hash, the seed and the sample index; its draws are a counter-based hash of (key, stream, element
index), computed with integer tensor ops wherever the inputs live. So a map never depends on the batch it
was computed in or the chunk size, all rows of a chunk are drawn in a few vectorised ops (no per-row
generator, no host-to-device copy on a GPU), and the integers are the same on every device (the normal
draws' log/cos/sqrt may differ in the last bits between a CPU and a GPU).
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


class RowSampler:
    """Counter-based draws per row ``(item, sample)`` of a batch, the same whatever the batch or chunking."""

    def __init__(self, inputs: torch.Tensor, seed: int) -> None:
        self.seeds = item_seeds(inputs, seed)
        self.device = inputs.device

    def bits(self, items: torch.Tensor, samples: torch.Tensor, shape: tuple[int, ...], stream: int = 0
             ) -> torch.Tensor:
        """Uniform 32-bit integers (int64) ``[R, *shape]`` for rows ``(items[r], samples[r])``.

        Element ``j`` of row ``r`` in ``stream`` is ``mix32(mix32(mix32(j ^ lo) ^ hi) ^ stream)`` with
        ``(lo, hi)`` the two 32-bit halves of the row's key: different streams of one row are independent.
        """
        keys = [mix_seed(self.seeds[i], s) for i, s in zip(items.tolist(), samples.tolist())]
        key = torch.tensor(keys, dtype=torch.int64, device=self.device).view(-1, *(1,) * len(shape))
        count = math.prod(shape)
        j = torch.arange(count, dtype=torch.int64, device=self.device).view(1, *shape)
        z = mix32(j ^ (key & _MASK32))
        z = mix32(z ^ (key >> 32))
        return mix32(z ^ (stream & _MASK32))

    def uniform(self, items: torch.Tensor, samples: torch.Tensor, shape: tuple[int, ...], stream: int = 0
                ) -> torch.Tensor:
        """Float32 draws ``[R, *shape]`` from U[0, 1) (24-bit resolution: exact in float32). ``uniform`` and
        ``normal`` of one row use disjoint bit streams, whatever their ``stream`` numbers."""
        return (self.bits(items, samples, shape, 3 * stream) >> 8).to(torch.float32).mul_(2.0**-24)

    def normal(self, items: torch.Tensor, samples: torch.Tensor, shape: tuple[int, ...], stream: int = 0
               ) -> torch.Tensor:
        """Float32 draws ``[R, *shape]`` from N(0, 1) by the Box-Muller transform of two uniform streams."""
        u1 = ((self.bits(items, samples, shape, 3 * stream + 1) >> 8) + 1).to(torch.float64).mul_(2.0**-24)  # (0, 1]
        u2 = (self.bits(items, samples, shape, 3 * stream + 2) >> 8).to(torch.float64).mul_(2.0**-24)
        return (u1.log_().mul_(-2).sqrt_() * torch.cos(u2.mul_(2 * math.pi))).to(torch.float32)
