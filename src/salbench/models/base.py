"""The model registry, model specs, normalisation wrapper and checkpoints.

A registered architecture is a builder ``fn(num_classes) -> nn.Module`` plus a :class:`ModelSpec`
saying its input size and normalisation (kept inside the model, so saliency inputs and baselines
live in pixel space [0, 1]), its CAM target layer and whether it has GAP + one linear layer.
"""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn

from ..registry import Registry

ARCHS: Registry["Arch"] = Registry("model architecture")


@dataclass(frozen=True)
class ModelSpec:
    """What the pipeline must know about an architecture. Layer names are relative to the wrapper."""

    arch: str
    input_size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    target_layer: str
    gap_fc: bool = False
    family: str = "cnn"
    #: how logits become class probabilities: "softmax" (cross-entropy training) or "sigmoid" (BCE, CoDA-Nets)
    probability: str = "softmax"
    #: capabilities some methods require that this architecture lacks, with the reason (see ``Method.requires``;
    #: ``spatial_feature_maps``: every layer method; ``parameter_randomisation``: the model sanity checks)
    lacks: dict[str, str] = field(default_factory=dict)
    #: further per-architecture layers by role, e.g. ``excitation_layer`` (TorchRay: VGG16 pool4, ResNet50 layer3)
    extra: dict[str, Any] = field(default_factory=dict)
    #: layers whose feature maps the layer-wise cluster maps explain (INV, Bianchi et al. 2024), shallow to deep;
    #: empty: the architecture is not explained layer by layer
    layerwise: tuple[str, ...] = ()
    #: run in channels-last layout on the CPU, where oneDNN's direct convolutions beat the default im2col path
    #: (forward + input gradient per image, one thread: small CNN at 64 px 1.9 -> 1.3 ms, ResNet50 at 224 px
    #: 257 -> 232 ms); off for CoDA-Nets (their unfold-based layers get 30 % slower) and for user models, whose
    #: code may ``view`` feature maps as contiguous
    cpu_channels_last: bool = False

    def layer(self, role: str = "target_layer") -> str:
        """The layer a method with ``layer_role`` reads: ``extra[role]``, else the CAM target layer."""
        return self.target_layer if role == "target_layer" else self.extra.get(role, self.target_layer)


def class_probabilities(logits: torch.Tensor, spec: ModelSpec) -> torch.Tensor:
    """``[B,K]`` probabilities from logits the way the model was trained (softmax or per-class sigmoid)."""
    return torch.sigmoid(logits) if spec.probability == "sigmoid" else torch.softmax(logits, dim=1)


@dataclass(frozen=True)
class Arch:
    """A registered architecture: how to build it and its spec."""

    build: Callable[[int], nn.Module]
    spec: ModelSpec
    description: str = ""


def register_arch(name: str, spec: ModelSpec, description: str = "") -> Callable:
    """Decorator registering ``build(num_classes) -> nn.Module`` as architecture ``name``."""

    def decorator(build: Callable[[int], nn.Module]) -> Callable[[int], nn.Module]:
        ARCHS.register(name, description or (build.__doc__ or "").strip().splitlines()[0])(Arch(build, spec))
        return build

    return decorator


def list_models(filter: str = "*") -> list[str]:
    """Registered architecture names matching the fnmatch ``filter``."""
    return ARCHS.names(filter)


class NormalizedClassifier(nn.Module):
    """``net((x - mean) / std)`` for pixel-space inputs in [0, 1]; the net is the ``net`` submodule."""

    def __init__(self, net: nn.Module, spec: ModelSpec) -> None:
        super().__init__()
        self.net = net
        self.spec = spec
        self.register_buffer("mean", torch.tensor(spec.mean).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(spec.std).view(1, -1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net((x - self.mean) / self.std)


def build_model(arch: str, num_classes: int) -> NormalizedClassifier:
    """A freshly initialised, normalisation-wrapped model of architecture ``arch``."""
    entry = ARCHS.get(arch)
    return NormalizedClassifier(entry.build(num_classes), entry.spec)


def to_device(model: nn.Module, device: str | torch.device) -> nn.Module:
    """``model`` moved to ``device``, on the CPU in channels-last layout when its spec asks (see ModelSpec)."""
    device = torch.device(device)
    spec = getattr(model, "spec", None)
    if device.type == "cpu" and spec is not None and spec.cpu_channels_last:
        return model.to(device, memory_format=torch.channels_last)
    return model.to(device)


#: models that are no registered architecture (the user's own, :mod:`salbench.models.user`): a checkpoint key
#: -> the function rebuilding the model from the record under that key, which a model carries as the attribute
#: of that name. Their modules register here, so checkpoint loading knows none of them.
REBUILDERS: dict[str, Callable[[Any], NormalizedClassifier]] = {}


def register_rebuilder(key: str, rebuild: Callable[[Any], NormalizedClassifier]) -> None:
    """Let checkpoints with a ``key`` record rebuild their model with ``rebuild(record)`` (weights loaded after)."""
    if key in REBUILDERS or key in ("arch", "num_classes", "state_dict", "meta"):
        raise ValueError(f"checkpoint key {key!r} is taken")
    REBUILDERS[key] = rebuild


def save_checkpoint(model: NormalizedClassifier, path: str | Path, meta: dict[str, Any]) -> str:
    """Save weights + arch + metadata atomically; returns the file's sha256."""
    from ..store import atomic_path

    buffer = io.BytesIO()
    num_classes = meta["num_classes"]
    payload = {"arch": model.spec.arch, "num_classes": num_classes, "state_dict": model.state_dict(), "meta": meta}
    for key in REBUILDERS:  # a model that is no registered architecture: how to rebuild it
        if getattr(model, key, None) is not None:
            payload[key] = getattr(model, key)
    torch.save(payload, buffer)
    data = buffer.getvalue()
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return hashlib.sha256(data).hexdigest()


class CheckpointError(RuntimeError):
    """A checkpoint file is missing, corrupted or for an unknown architecture."""


def load_checkpoint(path: str | Path, device: str | torch.device = "cpu") -> NormalizedClassifier:
    """Load a checkpoint written by :func:`save_checkpoint`, in eval mode on ``device`` (:func:`to_device`)."""
    try:
        payload = torch.load(path, map_location="cpu", weights_only=False)
        key = next((k for k in REBUILDERS if k in payload), None)
        model = REBUILDERS[key](payload[key]) if key else build_model(payload["arch"], payload["num_classes"])
        model.load_state_dict(payload["state_dict"])
    except Exception as err:
        raise CheckpointError(f"checkpoint {path} cannot be loaded ({type(err).__name__}: {err})") from err
    model.meta = payload.get("meta", {})
    return to_device(model.eval(), device)
