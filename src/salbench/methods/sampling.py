"""Seeded random draws that depend only on (seed, item content, sample index).

Sampling methods (SmoothGrad noise, expected-gradients references, random baselines) evaluate
``items x samples`` rows in chunks. Each row draws from its own CPU generator seeded from the item's
content hash and the sample index, so a map never depends on the batch it was computed in, the chunk
size or the device.
"""

from __future__ import annotations

import torch

from .controls import item_seeds

_MASK64 = (1 << 64) - 1
_GOLDEN = 0x9E3779B97F4A7C15


def mix_seed(item_seed: int, sample: int) -> int:
    """A 63-bit seed for row ``(item, sample)``: the SplitMix64 finaliser of ``item_seed + (sample + 1) * golden``."""
    z = (item_seed + (sample + 1) * _GOLDEN) & _MASK64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK64
    return (z ^ (z >> 31)) >> 1


class RowSampler:
    """Per-row generators for a batch: ``generator(item, sample)`` is the same whatever the batch or chunking."""

    def __init__(self, inputs: torch.Tensor, seed: int) -> None:
        self.seeds = item_seeds(inputs, seed)

    def generator(self, item: int, sample: int) -> torch.Generator:
        return torch.Generator().manual_seed(mix_seed(self.seeds[item], sample))

    def generators(self, items: torch.Tensor, samples: torch.Tensor) -> list[torch.Generator]:
        """One generator per row ``(items[r], samples[r])``."""
        return [self.generator(i, s) for i, s in zip(items.tolist(), samples.tolist())]
