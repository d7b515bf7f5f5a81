"""Fetched models: a registered architecture's published weights, or the user's own classifier.

:func:`fetch_model` turns a config entry (see :mod:`salbench.model_config`) into an ordinary checkpoint
that :func:`~salbench.models.base.load_checkpoint` loads. A user model's checkpoint carries its source
(torchvision or timm name, or the TorchScript file's bytes) and its spec, so it rebuilds without the
config or the original file.
"""

from __future__ import annotations

import io
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..model_config import USER_ARCH, user_spec
from .base import ModelSpec, NormalizedClassifier, register_rebuilder, save_checkpoint
from .vit import FAMILY as VIT_FAMILY
from .vit import unfuse_attention, vit_spec_fields


class UserModelError(ValueError):
    """A user model's file or settings do not fit; the message names the config key."""


def spec_from_dict(fields: dict[str, Any]) -> ModelSpec:
    """A :class:`ModelSpec` from plain data (lists become the tuples the dataclass holds)."""
    return ModelSpec(**{**fields, "mean": tuple(fields["mean"]), "std": tuple(fields["std"]),
                        "layerwise": tuple(fields.get("layerwise", ()))})


def build_user_net(source: dict[str, Any]) -> nn.Module:
    """The bare network a user model's ``source`` describes (weights not loaded, except TorchScript's own)."""
    if source["source"] == "torchscript":
        return torch.jit.load(io.BytesIO(source["torchscript"]), map_location="cpu")
    if source["source"] == "torchvision":
        from torchvision.models import get_model

        from torchvision.models import DenseNet

        from .pretrained import hookable_densenet

        net = get_model(source["name"], weights=None, num_classes=source["num_classes"])
        if isinstance(net, DenseNet):  # its in-place functional ReLU after the features breaks hooked autograd
            net = hookable_densenet(net)
    else:
        import timm

        net = unfuse_attention(timm.create_model(source["name"], pretrained=False, num_classes=source["num_classes"]))
    for module in net.modules():  # out-of-place activations, as DeepLIFT and LRP hooks need
        if isinstance(module, nn.ReLU):
            module.inplace = False
    return net


def rebuild_user_model(source: dict[str, Any]) -> NormalizedClassifier:
    """The user model a checkpoint's ``user`` record describes (weights loaded by the caller).

    A ViT's spec (family ``vit``) gets the transformer fields read from the built network: its blocks, token
    layout, randomisation stages, input layer and (unless the config named one) its target layer.
    """
    net = build_user_net(source)
    spec = spec_from_dict(source["spec"])
    if spec.family == VIT_FAMILY:
        fields = vit_spec_fields(net)
        spec = replace(spec, target_layer=spec.target_layer or fields["target_layer"],
                       extra={**fields["extra"], **spec.extra})
    model = NormalizedClassifier(net, spec)
    model.user = source
    return model


register_rebuilder("user", rebuild_user_model)  # a checkpoint's ``user`` record (save_checkpoint writes it)


def _state_dict(payload: Any, path: Path, key: str) -> dict[str, torch.Tensor]:
    if isinstance(payload, dict):
        for inner in ("state_dict", "model", "model_state_dict"):  # common training-script wrappers
            if isinstance(payload.get(inner), dict):
                payload = payload[inner]
                break
    if not isinstance(payload, dict) or not all(isinstance(v, torch.Tensor) for v in payload.values()):
        raise UserModelError(f"config key {key!r}: {path} holds no state dict (a dict of tensors, or one under "
                             "'state_dict' or 'model'); a whole pickled model is not accepted, save its state_dict()")
    return {k.removeprefix("module."): v for k, v in payload.items()}  # DataParallel's prefix


def user_model(model: str, entry: dict[str, Any]) -> NormalizedClassifier:
    """The user model of config entry ``models.<model>``, its weights loaded from ``checkpoint`` and checked."""
    key = f"models.{model}.checkpoint"
    path = Path(entry["checkpoint"])
    if not path.is_file():
        raise UserModelError(f"config key {key!r}: {path.resolve()} does not exist; put your model's "
                             + ("TorchScript file" if entry["source"] == "torchscript" else "state-dict file")
                             + " there or set the key to where it is")
    source = {"source": entry["source"], "name": entry.get("name"), "num_classes": entry["num_classes"],
              "spec": user_spec(model, entry), "checkpoint_file": path.name}
    if entry["source"] == "torchscript":
        source["torchscript"] = path.read_bytes()
    try:
        result = rebuild_user_model(source)
        if entry["source"] != "torchscript":
            state = _state_dict(torch.load(path, map_location="cpu", weights_only=True), path, key)
            result.net.load_state_dict(state)
    except UserModelError:
        raise
    except Exception as err:
        raise UserModelError(f"config key {key!r}: {path} cannot be loaded as a {entry['source']} "
                             f"{entry.get('name') or 'model'} ({type(err).__name__}: {err})") from err
    result.eval()
    size = entry["input_size"]
    with torch.no_grad():
        try:
            logits = result(torch.full((1, 3, size, size), 0.5))
        except Exception as err:
            raise UserModelError(f"config key 'models.{model}.input_size': the model fails on a {size} x {size} "
                                 f"image ({type(err).__name__}: {err})") from err
    if tuple(logits.shape) != (1, entry["num_classes"]):
        raise UserModelError(f"config key 'models.{model}.num_classes': {entry['num_classes']}, but the model gives "
                             f"logits of shape {tuple(logits.shape)} for one image")
    return result


def fetch_model(model: str, entry: dict[str, Any], out: Path, progress: bool = True) -> str:
    """Write the checkpoint of fetched model ``models.<model>`` (pretrained or user) to ``out``; its sha256."""
    if entry["arch"] == USER_ARCH:
        result = user_model(model, entry)
        meta = {"num_classes": entry["num_classes"], "source": entry["source"], "name": entry.get("name"),
                "checkpoint_file": str(entry["checkpoint"])}
    else:
        from .pretrained import IMAGENET_CLASSES, pretrained_model, weights_remote

        result = pretrained_model(entry["arch"], entry["pretrained"], progress=progress)
        remote = weights_remote(entry["arch"])
        meta = {"num_classes": IMAGENET_CLASSES, "pretrained": entry["pretrained"], "weights_url": remote.url,
                "weights_sha256": remote.sha256}
    return save_checkpoint(result, out, meta)


__all__ = ["UserModelError", "fetch_model", "rebuild_user_model", "user_model"]
