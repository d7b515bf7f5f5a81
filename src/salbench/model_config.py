"""Config entries of models that are fetched, not trained (torch-free: the Snakefile and config checks use it).

Two kinds:

* ``{arch: tv_resnet50, pretrained: imagenet}``: a registered architecture with published weights (see
  :mod:`salbench.models.pretrained`), downloaded with a pinned hash;
* ``{arch: user, source: torchvision|timm|torchscript, name: ..., checkpoint: PATH, input_size: ...,
  mean: [...], std: [...], num_classes: ...}``: the user's own classifier, a torchvision or timm architecture
  by name with a state-dict file, or a TorchScript file. Optional: ``target_layer`` (wrapper-relative, e.g.
  ``net.layer4``; layer methods are skipped without it), ``gap_fc`` (CAM applies), ``probability``.

Both become one checkpoint ``results/models/{model}.pt`` (rule ``fetch_model``) that the saliency, sanity
and score jobs load like a trained one.
"""

from __future__ import annotations

import re
from typing import Any

from .params import ConfigError

USER_ARCH = "user"
USER_SOURCES = ("torchvision", "timm", "torchscript")
USER_REQUIRED = ("source", "checkpoint", "input_size", "mean", "std", "num_classes")
USER_OPTIONAL = ("name", "gap_fc", "probability")
NO_TARGET_LAYER = "no target layer given (config key models.{model}.target_layer, e.g. net.layer4)"
TORCHSCRIPT_HOOKS = "a TorchScript model cannot take the module hooks this needs"
#: what a vision transformer (model family ``vit``, :mod:`salbench.models.vit`) lacks that CNN methods need
VIT_LACKS = {
    "spatial_feature_maps": "a vision transformer has token embeddings, not spatial convolutional feature maps; the "
                            "classic layer methods (excitation backprop, RSP, layer-wise maps) do not apply; the "
                            "transformer methods read the token grid",
    "propagation_rules": "no relevance rules for attention, layer norm and token embeddings in zennit's LRP",
    "relu_activations": "a vision transformer has GELU, no ReLU: the rule would be the plain gradient",
    "any_input_size": "a vision transformer's position embeddings fix its input size (grids are resized to it)",
}
#: names of the ViTs a user model may be, by source: torchvision's ``vit_b_16`` ...; timm's ``VisionTransformer``
#: models named ``vit_<size>_patch<k>...``, ``deit_...``, ``deit3_...`` (a pretrained tag after a dot allowed)
VIT_NAMES = {"torchvision": re.compile(r"vit_[bhl]_\d+"),
             "timm": re.compile(r"(vit|deit3?)_[a-z0-9]+(_distilled)?_patch\d+[a-z0-9_]*(\.[\w.-]+)?")}


def is_fetched(entry: dict[str, Any]) -> bool:
    """Whether a model entry is fetched (pretrained or user weights) instead of trained."""
    return entry["arch"] == USER_ARCH or "pretrained" in entry


def check_model_entry(model: str, entry: dict[str, Any], catalog: dict[str, Any]) -> None:
    """Raise a :class:`~salbench.config.ConfigError` naming the key of a wrong pretrained or user model entry."""
    key = f"models.{model}"
    if entry["arch"] != USER_ARCH:
        given = [k for k in (*USER_REQUIRED, *USER_OPTIONAL) if k in entry]
        if given:
            raise ConfigError(f"config key '{key}.{given[0]}' applies only with arch: {USER_ARCH} (a model of your own)")
        if "pretrained" in entry:
            offered = catalog["archs"][entry["arch"]]["spec"].get("extra", {}).get("pretrained", [])
            if entry["pretrained"] not in offered:
                raise ConfigError(f"config key '{key}.pretrained': architecture {entry['arch']!r} has no "
                                  f"{entry['pretrained']!r} weights; allowed values: {', '.join(offered) or '(none)'}")
        return
    if "pretrained" in entry:
        raise ConfigError(f"config key '{key}.pretrained' does not apply to arch: {USER_ARCH}; its weights are "
                          f"{key}.checkpoint")
    for required in USER_REQUIRED:
        if required not in entry:
            raise ConfigError(f"config key '{key}.{required}' is required with arch: {USER_ARCH} (keys: "
                              f"{', '.join(USER_REQUIRED)}; name too unless source is torchscript)")
    if entry["source"] not in USER_SOURCES:
        raise ConfigError(f"config key '{key}.source': {entry['source']!r}; allowed values: {', '.join(USER_SOURCES)}")
    if entry["source"] != "torchscript" and not entry.get("name"):
        raise ConfigError(f"config key '{key}.name' is required with source: {entry['source']} (the architecture's "
                          f"{entry['source']} name, e.g. resnet18)")
    if entry["source"] == "torchscript" and "name" in entry:
        raise ConfigError(f"config key '{key}.name' does not apply to source: torchscript (the file holds the model)")
    for stat in ("mean", "std"):
        values = entry[stat]
        if len(values) != 3 or (stat == "std" and min(values) <= 0):
            raise ConfigError(f"config key '{key}.{stat}': {values!r}; expected 3 per-channel values"
                              + (", all > 0" if stat == "std" else ""))


def is_vit_name(source: str, name: str | None) -> bool:
    """Whether a user model's torchvision or timm ``name`` is a vision transformer (:data:`VIT_NAMES`)."""
    pattern = VIT_NAMES.get(source)
    return bool(pattern and name and pattern.fullmatch(name))


def user_spec(model: str, entry: dict[str, Any]) -> dict[str, Any]:
    """The :class:`~salbench.models.base.ModelSpec` fields of a user model entry (plain data).

    A torchvision or timm ViT (:func:`is_vit_name`) is family ``vit`` and lacks :data:`VIT_LACKS`; its target
    layer (unless the entry names one), blocks and randomisation stages are read from the built network when
    its checkpoint loads (:func:`salbench.models.vit.vit_spec_fields`).
    """
    lacks = {}
    family = USER_ARCH
    if is_vit_name(entry["source"], entry.get("name")):
        lacks, family = dict(VIT_LACKS), "vit"
    elif entry["source"] == "torchscript":
        lacks = {"spatial_feature_maps": TORCHSCRIPT_HOOKS, "layer_maps": TORCHSCRIPT_HOOKS,
                 "propagation_rules": TORCHSCRIPT_HOOKS,
                 "parameter_randomisation": "a TorchScript model's layers have no reset_parameters() to re-initialise"}
    elif not entry.get("target_layer"):
        lacks = dict.fromkeys(("spatial_feature_maps", "layer_maps"), NO_TARGET_LAYER.format(model=model))
    return {"arch": USER_ARCH, "input_size": entry["input_size"], "mean": list(entry["mean"]),
            "std": list(entry["std"]), "target_layer": entry.get("target_layer", ""),
            "gap_fc": bool(entry.get("gap_fc", False)), "family": family,
            "probability": entry.get("probability", "softmax"), "lacks": lacks, "extra": {}, "layerwise": []}
