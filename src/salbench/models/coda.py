"""CoDA-Nets: convolutional dynamic alignment networks (Böhle, Fritz & Schiele, CVPR 2021).

Böhle, Fritz & Schiele, "Convolutional Dynamic Alignment Networks for Interpretable Classifications",
CVPR 2021 (arXiv:2104.00032); TPAMI version "Optimising for Interpretability: Convolutional Dynamic
Alignment Networks" (arXiv:2109.13004).

A Dynamic Alignment Unit (DAU) convolution computes, for every output position ``p``, a weight vector
per output channel ``j`` from the input itself, with a low-rank map (rank ``r``)::

    z(p)   = (Conv_kxk,C_in->r  x)(p)                     latent code, no bias
    w_j(p) = U_j z(p) + b_j = F_j [z(p); 1]               U_j: [D, r], b_j: [D], D = C_in k^2
    out_j(p) = <g(w_j(p)), patch(p)>                      g(w) = w ||w|| / (1 + ||w||^2)  (squashing)
                                                          or g(w) = w / ||w||              (L2)

There is no non-linearity between layers, so the whole network is ``y = W(x) x`` with an input-dependent
matrix ``W(x)``: with the dynamic weights detached (:func:`explanation_mode`), input x gradient of a
logit is its exact decomposition into per-pixel contributions.

The per-position weight tensors (``[B, C_out, D, h, w]``) are never materialised:

* ``<w_j(p), patch(p)> = sum_s [z(p); 1]_s <F_j[:, s], patch(p)>`` and ``<F_j[:, s], patch(p)>`` is one
  convolution of the input with the ``C_out (r+1)`` kernels ``F_j[:, s]`` (reshaped to ``C_in x k x k``);
* ``||w_j(p)||^2 = [z; 1]^T (F_j^T F_j) [z; 1]``, a quadratic form in the ``r+1``-dimensional latent
  code with the small Gram matrices ``F_j^T F_j`` (one 1x1 convolution).

Inputs are pixel images in [0, 1], fed as ``[x, 1 - x]`` (6 channels, :class:`AddInverse`) without any
normalisation; the head sums over positions and maps to logits ``out / T + b`` with ``b = log(0.1/0.9)``
(:class:`LogitHead`), trained with binary cross-entropy (sigmoid class probabilities).

Reference code followed (github.com/moboehle/CoDA-Nets): ``modules/DAUs.py`` (``DAUWeights``: a bias-free
k x k convolution to rank ``r``, then a 1x1 convolution with bias to the per-position weights, both with
PyTorch's default initialisation), ``modules/coda_conv.py`` (``CoDAConv2d``: unfold, weight, divide by the norm;
``detach`` in explanation mode), ``modules/norms.py`` (squashing, L2), ``models/simple_coda.py`` and
``modules/utils.py`` (``AdaptiveSumPool2d``, ``FinalLayer``), ``data/data_transforms.py`` (``AddInverse``).
One deliberate difference, without effect on a trained network's function: the 1x1 convolution's output rows
are ordered DAU-major here (row ``j * D + d``), patch-element-major there (their ``reshape_out`` views them as
``[D, C_out]``), a permutation of parameters (their checkpoints would load after permuting those rows).
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass
from typing import Iterator, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .base import ModelSpec, register_arch

CITATION = (
    "Böhle, Fritz & Schiele. Convolutional Dynamic Alignment Networks for Interpretable Classifications. "
    "CVPR 2021. arXiv:2104.00032"
)
#: the paper's logit prior: every class starts at probability 0.1 (b = log(0.1 / 0.9) ~ -2.197)
LOGIT_BIAS = math.log(0.1 / 0.9)
NORMS: tuple[str, ...] = ("squash", "l2")
#: floor on ||w||^2 (the Gram-form norm can round to a tiny negative number when w ~ 0)
EPS = 1e-12


class AddInverse(nn.Module):
    """``[x, 1 - x]`` along channels: dark and bright pixels both carry signal through a linear map."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([x, 1 - x], dim=1)


class DAUConv2d(nn.Module):
    """A convolution of Dynamic Alignment Units with rank-``rank`` dynamic weights (see the module docstring).

    Parameters: ``latent_weight [r, C_in, k, k]`` (the k x k convolution to the latent code),
    ``weight [C_out * D, r]`` and ``bias [C_out * D]`` (the 1x1 convolution from the latent code to the
    per-position weights; row ``j * D + d`` is element ``d`` of ``w_j``, patch elements ordered like
    :func:`torch.nn.functional.unfold`: channel-major, then kernel row, then column).
    ``detach`` (see :func:`explanation_mode`) detaches the dynamic weights, leaving a map linear in the input.
    """

    def __init__(self, in_channels: int, out_channels: int, rank: int, kernel_size: int = 3, stride: int = 1,
                 padding: int | None = None, bias: bool = True, norm: str = "squash") -> None:
        super().__init__()
        if norm not in NORMS:
            raise ValueError(f"unknown DAU norm {norm!r}; allowed: {', '.join(NORMS)}")
        if min(in_channels, out_channels, rank, kernel_size, stride) < 1:
            raise ValueError("DAU channels, rank, kernel size and stride must be positive")
        self.in_channels, self.out_channels, self.rank = in_channels, out_channels, rank
        self.kernel_size, self.stride = kernel_size, stride
        self.padding = (kernel_size - 1) // 2 if padding is None else padding
        self.norm = norm
        self.detach = False
        patch = in_channels * kernel_size ** 2
        self.latent_weight = nn.Parameter(torch.empty(rank, in_channels, kernel_size, kernel_size))
        self.weight = nn.Parameter(torch.empty(out_channels * patch, rank))
        self.bias = nn.Parameter(torch.empty(out_channels * patch)) if bias else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """PyTorch's default convolution initialisation for both factors (as the paper's code uses)."""
        nn.init.kaiming_uniform_(self.latent_weight, a=math.sqrt(5))  # fan_in = C_in k^2
        nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))  # fan_in = r
        if self.bias is not None:
            bound = 1 / math.sqrt(self.rank)
            nn.init.uniform_(self.bias, -bound, bound)

    def extra_repr(self) -> str:
        return (f"{self.in_channels}, {self.out_channels}, rank={self.rank}, kernel_size={self.kernel_size}, "
                f"stride={self.stride}, padding={self.padding}, bias={self.bias is not None}, norm={self.norm}")

    def factors(self) -> torch.Tensor:
        """``F [C_out, D, r (+1)]``: ``w_j(p) = F_j [z(p); 1]`` (the bias is the last column)."""
        u = self.weight.view(self.out_channels, -1, self.rank)
        return u if self.bias is None else torch.cat([u, self.bias.view(self.out_channels, -1, 1)], dim=2)

    def latent(self, x: torch.Tensor) -> torch.Tensor:
        """The latent code ``[z; 1]`` (``[B, r (+1), h, w]``) the dynamic weights are computed from."""
        z = F.conv2d(x, self.latent_weight, None, self.stride, self.padding)
        return z if self.bias is None else torch.cat([z, torch.ones_like(z[:, :1])], dim=1)

    def weight_scale(self, squared_norm: torch.Tensor) -> torch.Tensor:
        """``g(w) = w * scale``: ``||w|| / (1 + ||w||^2)`` (squashing) or ``1 / ||w||`` (L2)."""
        squared_norm = squared_norm.clamp_min(EPS)
        if self.norm == "squash":
            return squared_norm.sqrt() / (1 + squared_norm)
        return squared_norm.rsqrt()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        factors = self.factors()  # [J, D, S]
        out_channels, _, s = factors.shape
        code = self.latent(x)  # [B, S, h, w]
        b, _, h, w = code.shape
        kernels = factors.transpose(1, 2).reshape(out_channels * s, self.in_channels, self.kernel_size,
                                                  self.kernel_size)
        # <F_j[:, s], patch(p)> for every (j, s): one convolution of the input
        projections = F.conv2d(x, kernels, None, self.stride, self.padding).view(b, out_channels, s, h, w)
        gram = factors.transpose(1, 2) @ factors  # [J, S, S]
        gram_code = F.conv2d(code, gram.reshape(out_channels * s, s, 1, 1)).view(b, out_channels, s, h, w)
        squared_norm = (gram_code * code.unsqueeze(1)).sum(dim=2)  # ||w_j(p)||^2: [B, J, h, w]
        scale = self.weight_scale(squared_norm)
        if self.detach:
            code, scale = code.detach(), scale.detach()
        linear = (projections * code.unsqueeze(1)).sum(dim=2)  # <w_j(p), patch(p)>
        return linear * scale


class SumPool(nn.Module):
    """Sum over all positions, ``[B, C, h, w] -> [B, C]`` (the paper's AdaptiveSumPool2d(1))."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.sum(dim=(2, 3))


class LogitHead(nn.Module):
    """``logit = out / T + b``: temperature ``T`` and one fixed bias for every class (no parameters)."""

    def __init__(self, temperature: float, bias: float = LOGIT_BIAS) -> None:
        super().__init__()
        if not temperature > 0:
            raise ValueError(f"temperature must be positive, got {temperature}")
        self.temperature, self.bias = float(temperature), float(bias)

    def extra_repr(self) -> str:
        return f"temperature={self.temperature}, bias={self.bias:.4f}"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x / self.temperature + self.bias


@dataclass(frozen=True)
class CoDAConfig:
    """A plain CoDA-Net: DAU layers (per-layer channels, ranks, kernels, strides, paddings), sum pool, head.

    The last layer's ``channels`` entry is replaced by the number of classes.
    """

    channels: tuple[int, ...]
    ranks: tuple[int, ...]
    kernels: tuple[int, ...]
    strides: tuple[int, ...]
    paddings: tuple[int, ...]
    temperature: float
    norm: str = "squash"

    def __post_init__(self) -> None:
        sizes = {len(self.channels), len(self.ranks), len(self.kernels), len(self.strides), len(self.paddings)}
        if len(sizes) != 1:
            raise ValueError(f"CoDA config: per-layer lists differ in length: {self}")


class CoDANet(nn.Module):
    """``add_inverse`` -> ``layers`` (DAU convolutions, nothing in between) -> ``pool`` (sum) -> ``head``."""

    def __init__(self, config: CoDAConfig, num_classes: int, in_channels: int = 3) -> None:
        super().__init__()
        self.add_inverse = AddInverse()
        channels = [*config.channels[:-1], num_classes]
        inputs = [2 * in_channels, *channels[:-1]]
        self.layers = nn.Sequential(*(
            DAUConv2d(c_in, c_out, rank, k, stride, padding, norm=config.norm)
            for c_in, c_out, rank, k, stride, padding
            in zip(inputs, channels, config.ranks, config.kernels, config.strides, config.paddings)
        ))
        self.pool = SumPool()
        self.head = LogitHead(config.temperature)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classify(self.add_inverse(x))

    def classify(self, encoded: torch.Tensor) -> torch.Tensor:
        """Logits from the 6-channel input ``[x, 1 - x]`` (everything after :class:`AddInverse`)."""
        return self.head(self.pool(self.layers(encoded)))


class EncodedCoDA(nn.Module):
    """A CoDA-Net (bare or in its normalisation wrapper) fed its 6-channel input ``[x, 1 - x]`` directly.

    The authors remove a pixel of a CoDA-Net by zeroing all 6 channels of that input (``masked_predict`` in
    ``interpretability/analyses/pixel_removal.py`` of github.com/moboehle/CoDA-Nets multiplies
    ``pre_process_img(img)``, i.e. ``AddInverse``'s output, by the 0/1 mask): no pixel-space image gives
    such an input (a black pixel is ``[0, 1]``), so the removal happens on :meth:`encode`'s output and
    :meth:`forward` classifies it.
    """

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        net = getattr(model, "net", model)
        if not isinstance(net, CoDANet):
            raise TypeError(f"{type(net).__name__} is not a CoDA-Net: only a CoDA-Net has the [x, 1 - x] input")
        self.model, self.net = model, net

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """The 6-channel input ``[x', 1 - x']`` of pixel images ``x`` (``x'`` after the wrapper's normalisation)."""
        mean, std = getattr(self.model, "mean", None), getattr(self.model, "std", None)
        if mean is not None and std is not None:
            x = (x - mean) / std
        return self.net.add_inverse(x)

    def forward(self, encoded: torch.Tensor) -> torch.Tensor:
        return self.net.classify(encoded)


def dau_layers(model: nn.Module) -> list[DAUConv2d]:
    """Every DAU convolution of ``model``, in registration (forward) order."""
    return [module for module in model.modules() if isinstance(module, DAUConv2d)]


@contextlib.contextmanager
def explanation_mode(model: nn.Module, detach: bool = True) -> Iterator[nn.Module]:
    """Detach every DAU's dynamic weights inside the block (the paper's explanation mode), then restore.

    With the weights detached the network is a linear map of its 6-channel input (plus the logit bias),
    so input x gradient gives the exact contributions. The forward values are unchanged.
    """
    layers = dau_layers(model)
    if not layers:
        raise TypeError(f"{type(model).__name__} has no DAU layers: explanation mode needs a CoDA-Net")
    before = [layer.detach for layer in layers]
    try:
        for layer in layers:
            layer.detach = detach
        yield model
    finally:
        for layer, value in zip(layers, before):
            layer.detach = value


#: why the relevance-propagation methods (LRP, excitation backprop, RSP/RAP) do not apply
NO_PROPAGATION_RULES = (
    "a CoDA-Net has no ReLU, max-pooling or batch-norm layers to attach relevance rules to; its non-linearity "
    "is the input-dependent weighting inside each DAU, for which no rule is defined"
)


def coda_spec(arch: str, config: CoDAConfig, input_size: int, **extra: object) -> ModelSpec:
    """The spec of a CoDA architecture: no normalisation (the net sees [x, 1 - x]), sigmoid probabilities."""
    return ModelSpec(
        arch=arch, input_size=input_size, mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0),
        target_layer=f"net.layers.{len(config.channels) - 1}",  # the last DAU layer, before the sum pool
        family="coda", probability="sigmoid", lacks={"propagation_rules": NO_PROPAGATION_RULES},
        extra={"temperature": config.temperature, **extra},
    )


def register_coda(name: str, config: CoDAConfig, input_size: int, description: str) -> None:
    """Register ``name`` building :class:`CoDANet` with ``config`` (one architecture per temperature)."""

    def build(num_classes: int) -> nn.Module:
        return CoDANet(config, num_classes)

    register_arch(name, coda_spec(name, config, input_size), description)(build)


#: The paper's CIFAR-10 model "9L-S-CoDA-SQ-T" (experiments/CIFAR10/final/experiment_parameters.py)
CIFAR10_LAYERS = dict(
    channels=(16, 16, 32, 32, 32, 64, 64, 64, 10),
    ranks=(32, 32, 64, 64, 64, 64, 64, 64, 64),
    kernels=(3,) * 8 + (1,),
    strides=(1, 1, 2, 1, 1, 2, 1, 1, 1),
    paddings=(1,) * 8 + (0,),
)
#: the temperatures of the paper's CIFAR-10 ablation (T = 1000 is the evaluated model); the temperature is part
#: of the architecture (a checkpoint rebuilds its model from the architecture name alone), so an ablation
#: registers one architecture per temperature, e.g. ``register_coda("coda_cifar10_t10", ...)``
CIFAR10_TEMPERATURES: tuple[int, ...] = (10, 50, 100, 500, 1000, 5000, 10000)

register_coda("coda_cifar10", CoDAConfig(**CIFAR10_LAYERS, temperature=1000), 32,
              "CoDA-Net 9L-S-CoDA-SQ-1000 of the paper (CIFAR-10, 32 px, squashing, T = 1000)")

#: ``small_coda``: the 64 px shapes on a CPU. Reductions from the CIFAR-10 model: 5 DAU layers instead of 9,
#: channels 8-32 instead of 16-64, rank 8 instead of 32-64, and a 4 x 4 stride-4 first layer (64 px -> 16 x 16)
#: so that one training step costs about 0.07 CPU s for 32 images; the last map is 8 x 8, as for CIFAR-10.
SMALL_LAYERS = dict(
    channels=(8, 16, 16, 32, 6),
    ranks=(8, 8, 8, 8, 8),
    kernels=(4, 3, 3, 3, 1),
    strides=(4, 1, 2, 1, 1),
    paddings=(0, 1, 1, 1, 0),
)
#: lower than the paper's 1000: five layers amplify less than nine, and the CPU budget is a few thousand steps
SMALL_TEMPERATURE = 16.0
register_coda("small_coda", CoDAConfig(**SMALL_LAYERS, temperature=SMALL_TEMPERATURE), 64,
              "small CoDA-Net (5 DAU layers, 8-32 channels, rank 8, T = 16), 64 px shapes, CPU-trainable")
