"""Models: the architecture registry, specs, checkpoints and the built-in small models."""

from . import cnn, coda, pretrained, resnet, vit  # noqa: F401  (register small_cnn, the CoDA-Nets, tv_*, small_resnet, small_vit)
from . import user  # noqa: F401  (lets checkpoints of the user's own models load)
from .base import (
    ARCHS,
    Arch,
    CheckpointError,
    ModelSpec,
    NormalizedClassifier,
    build_model,
    class_probabilities,
    list_models,
    load_checkpoint,
    register_arch,
    save_checkpoint,
    to_device,
)
from .layers import randomisation_order

__all__ = [
    "ARCHS", "Arch", "CheckpointError", "ModelSpec", "NormalizedClassifier", "build_model", "class_probabilities", "list_models",
    "load_checkpoint", "randomisation_order", "register_arch", "save_checkpoint", "to_device",
]
