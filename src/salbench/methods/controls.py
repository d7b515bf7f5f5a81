"""Control baselines that ignore the model: random noise, Sobel edges, a centred Gaussian.

Random and Sobel maps are the controls of Hooker et al. (NeurIPS 2019, ROAR); the centre map is the
pointing-game baseline of Zhang et al. (ECCV 2016 / IJCV 2018). A method that does not beat them
explains nothing about the model.
"""

from __future__ import annotations

import hashlib
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, Iterator

import torch
import torch.nn.functional as F
from torch import nn

from ..params import ParamError
from .base import Method, register_method

#: ITU-R BT.601 luma weights for RGB -> grayscale
LUMA = (0.299, 0.587, 0.114)


#: sha256 of an item's float32 bytes -> the bytes whose seed it draws (see :func:`seeds_from`)
_SEED_SOURCES: ContextVar[dict[bytes, bytes]] = ContextVar("seed_sources", default={})


def _float_bytes(inputs: torch.Tensor) -> list[bytes]:
    return [item.tobytes() for item in inputs.detach().to("cpu", torch.float32).contiguous().numpy()]


def item_seeds(inputs: torch.Tensor, seed: int) -> list[int]:
    """One 63-bit seed per item: sha256 of ``seed`` and the item's float32 bytes (one host copy per batch)."""
    prefix = int(seed).to_bytes(8, "little", signed=True)
    sources = _SEED_SOURCES.get()
    seeds = []
    for item in _float_bytes(inputs):
        item = sources.get(hashlib.sha256(item).digest(), item) if sources else item
        seeds.append(int.from_bytes(hashlib.sha256(prefix + item).digest()[:8], "little") >> 1)
    return seeds


@contextmanager
def seeds_from(inputs: torch.Tensor, sources: torch.Tensor) -> Iterator[None]:
    """Within the block, an item equal to ``inputs[i]`` draws the random numbers of ``sources[i]``.

    Checks that compare a method's maps of two related inputs (input invariance: ``x`` and ``x + c``)
    need sampling methods to draw the same noise for both; otherwise they measure the noise.
    """
    aliases = {hashlib.sha256(a).digest(): b for a, b in zip(_float_bytes(inputs), _float_bytes(sources))}
    token = _SEED_SOURCES.set({**_SEED_SOURCES.get(), **aliases})
    try:
        yield
    finally:
        _SEED_SOURCES.reset(token)


def grayscale(inputs: torch.Tensor) -> torch.Tensor:
    """``[B,C,H,W]`` -> ``[B,H,W]`` float32: BT.601 luma for RGB, the channel mean otherwise."""
    x = inputs.detach().to(torch.float32)
    if x.shape[1] == 3:
        weights = torch.tensor(LUMA, device=x.device).view(1, 3, 1, 1)
        return (x * weights).sum(dim=1)
    return x.mean(dim=1)


def sobel_magnitude(gray: torch.Tensor) -> torch.Tensor:
    """Sobel gradient magnitude ``sqrt(gx^2 + gy^2)`` of ``[B,H,W]`` images, replicate-padded borders."""
    kx = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]], device=gray.device, dtype=gray.dtype)
    kernels = torch.stack([kx, kx.T]).unsqueeze(1)  # [2,1,3,3]: d/dx, d/dy
    padded = F.pad(gray.unsqueeze(1), (1, 1, 1, 1), mode="replicate")
    return F.conv2d(padded, kernels).pow(2).sum(dim=1).sqrt()


def centre_gaussian(height: int, width: int, sigma: float, device: torch.device) -> torch.Tensor:
    """``[H,W]`` isotropic Gaussian peaked (value 1) at the image centre; std = ``sigma * min(H, W)`` px."""
    std = sigma * min(height, width)
    y = torch.arange(height, device=device, dtype=torch.float32) - (height - 1) / 2
    x = torch.arange(width, device=device, dtype=torch.float32) - (width - 1) / 2
    return torch.exp(-(y[:, None] ** 2 + x[None, :] ** 2) / (2 * std**2))


@register_method("random")
class RandomControl(Method):
    """Uniform noise in [0, 1), seeded per item by the seed and the item's content (Hooker et al. 2019 control)."""

    citation = (
        "Hooker, Erhan, Kindermans & Kim. A Benchmark for Interpretability Methods in Deep Neural "
        "Networks. NeurIPS 2019. arXiv:1806.10758"
    )
    defaults = {"seed": 0}
    uses_model = False

    def attribute(self, model: nn.Module, inputs: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Noise drawn on the CPU from a per-item generator, so sharding, batch size and device never change it."""
        height, width = inputs.shape[-2:]
        seeds = item_seeds(inputs, self.params["seed"])
        noise = [torch.rand(height, width, generator=torch.Generator().manual_seed(s)) for s in seeds]
        return torch.stack(noise).to(inputs.device)


@register_method("sobel")
class SobelControl(Method):
    """Sobel edge magnitude of the grayscale input: a model-independent control (Hooker et al. 2019)."""

    citation = RandomControl.citation
    defaults: dict[str, Any] = {}
    uses_model = False

    def attribute(self, model: nn.Module, inputs: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return sobel_magnitude(grayscale(inputs))


@register_method("centre")
class CentreControl(Method):
    """Centred isotropic Gaussian: the input-independent centre prior (Zhang et al. 2018)."""

    citation = (
        "Zhang, Bargal, Lin, Brandt, Shen & Sclaroff. Top-down Neural Attention by Excitation "
        "Backprop. ECCV 2016; IJCV 126:1084-1102, 2018. arXiv:1608.00507"
    )
    #: std as a fraction of the shorter image side
    defaults = {"sigma": 0.25}
    uses_model = False

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        if not self.params["sigma"] > 0:
            raise ParamError(f"method 'centre': sigma must be > 0, got {self.params['sigma']!r}")

    def attribute(self, model: nn.Module, inputs: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        height, width = inputs.shape[-2:]
        prior = centre_gaussian(height, width, float(self.params["sigma"]), inputs.device)
        return prior.expand(inputs.shape[0], height, width).clone()
