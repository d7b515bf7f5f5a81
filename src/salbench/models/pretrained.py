"""ImageNet classifiers: torchvision's (``tv_vgg16``, ``tv_resnet50``, ``tv_densenet121``, ``tv_vit_b_16``) and timm's
DeiT-Ti (``deit_tiny_patch16_224``), the ViTs with the transformer spec (:mod:`salbench.models.vit`).

Each is torchvision's architecture inside the normalisation wrapper (ImageNet mean and std, 224 px), with
the layers TorchRay (Fong et al. 2019) explains: VGG16 ``features.29`` (conv5_3's ReLU) and pool4
(``features.23``) for excitation backprop, ResNet50 ``layer4`` and ``layer3``, DenseNet121 ``features``.
Their ImageNet weights (torchvision's ``IMAGENET1K_V1`` files) are fetched by :func:`pretrained_model`
through :func:`~salbench.data.download.fetch_file` into the verified, locked cache
(``$SALBENCH_WEIGHTS``, else the download cache), and used offline from there once cached.

Pinned hashes: torchvision names each file after the first 8 hex digits of its sha256 and checks only
those. The full sha256 is pinned where a public record of it was found (ResNet50: 102530333 bytes,
``0676ba61...fb8a``, listed in a public project's asset table); for the other files only torchvision's
prefix is known, so only the prefix is pinned (checked as torchvision checks it).

torchvision builds ReLUs in place; they are switched to out-of-place, as DeepLIFT and LRP hooks need.
DenseNet applies an in-place functional ReLU after ``features``; here a ReLU module ends ``features`` instead
(no weights, same logits), so CAM-style methods read the rectified maps the classifier pools, activation
hooks see that ReLU, and autograd through hooked layers works.
"""

from __future__ import annotations

import functools
import os
import re
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import nn

from .base import ARCHS, ModelSpec, NormalizedClassifier, build_model, register_arch
from .vit import timm_layout, torchvision_layout, unfuse_attention

if TYPE_CHECKING:  # the data package costs ~1.5 s to import; only fetching weights needs it
    from ..data.download import Remote

WEIGHTS_ENV = "SALBENCH_WEIGHTS"
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
IMAGENET_CLASSES = 1000
BASE_URL = "https://download.pytorch.org/models"

#: torchvision's IMAGENET1K_V1 weight files: (url, sha256, cache name); the sha256 is full where published, else
#: torchvision's 8-digit prefix
WEIGHTS: dict[str, tuple[str, str, str]] = {
    "tv_vgg16": (f"{BASE_URL}/vgg16-397923af.pth", "397923af", "vgg16-397923af.pth"),
    "tv_resnet50": (f"{BASE_URL}/resnet50-0676ba61.pth",
                    "0676ba61b6795bbe1773cffd859882e5e297624d384b6993f7c9e683e722fb8a", "resnet50-0676ba61.pth"),
    "tv_densenet121": (f"{BASE_URL}/densenet121-a639ec97.pth", "a639ec97", "densenet121-a639ec97.pth"),
    "tv_vit_b_16": (f"{BASE_URL}/vit_b_16-c867db91.pth", "c867db91", "vit_b_16-c867db91.pth"),
    # timm's ``deit_tiny_patch16_224.fb_in1k`` file, released by the DeiT authors (Touvron et al. 2021); its name
    # carries the sha256 prefix torch.hub checks, pinned as for torchvision's
    "deit_tiny_patch16_224": ("https://dl.fbaipublicfiles.com/deit/deit_tiny_patch16_224-a1311bcf.pth", "a1311bcf",
                              "deit_tiny_patch16_224-a1311bcf.pth"),
}


def weights_remote(arch: str) -> Remote:
    """The pinned weight file of ``arch``."""
    from ..data.download import Remote

    return Remote(*WEIGHTS[arch])


NO_DENSENET_RULES = "no relevance rules for DenseNet's pre-activation batch norm and dense concatenations here"


def _imagenet_spec(arch: str, target_layer: str, **fields) -> ModelSpec:
    extra = {"pretrained": ["imagenet"], **fields.pop("extra", {})}
    fields.setdefault("cpu_channels_last", fields.get("family", "cnn") == "cnn")
    return ModelSpec(arch=arch, input_size=224, mean=IMAGENET_MEAN, std=IMAGENET_STD, target_layer=target_layer,
                     extra=extra, **fields)


def _out_of_place(net: nn.Module) -> nn.Module:
    for module in net.modules():
        if isinstance(module, nn.ReLU):
            module.inplace = False
    return net


VGG16_CONVS = (0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28)

VGG16_SPEC = _imagenet_spec(
    "tv_vgg16", "net.features.29",  # conv5_3's ReLU (TorchRay's VGG16 saliency layer)
    # INV's layers: conv3_1 .. conv5_3 (conv layers 5-13), each as its ReLU's output, as Keras' Conv2D(relu) gives
    layerwise=tuple(f"net.features.{i + 1}" for i in VGG16_CONVS[4:]),
    extra={"excitation_layer": "net.features.23",  # pool4 (TorchRay)
           "randomisation_blocks": [[name, [f"net.classifier.{i}"]] for name, i in (("fc8", 6), ("fc7", 3), ("fc6", 0))]
           + [[f"conv{k}", [f"net.features.{i}"]] for k, i in zip(range(13, 0, -1), VGG16_CONVS[::-1])]},
)

RESNET50_SPEC = _imagenet_spec(
    "tv_resnet50", "net.layer4", gap_fc=True,
    layerwise=("net.layer1", "net.layer2", "net.layer3", "net.layer4"),
    extra={"excitation_layer": "net.layer3",  # TorchRay
           "randomisation_blocks": [["fc", ["net.fc"]], *([f"layer{k}", [f"net.layer{k}"]] for k in (4, 3, 2, 1)),
                                    ["stem", ["net.conv1", "net.bn1"]]]},
)

DENSENET121_BLOCKS = [["classifier", ["net.classifier"]], ["norm5", ["net.features.norm5"]]] + [
    [part, [f"net.features.{part}"]] for k in (4, 3, 2, 1)
    for part in ((f"denseblock{k}",) if k == 4 else (f"transition{k}", f"denseblock{k}"))
] + [["stem", ["net.features.conv0", "net.features.norm0"]]]

DENSENET121_SPEC = _imagenet_spec(
    "tv_densenet121", "net.features", gap_fc=True,  # features ends with the appended ReLU (see the module doc)
    layerwise=tuple(f"net.features.denseblock{k}" for k in (1, 2, 3, 4)),
    lacks={"propagation_rules": NO_DENSENET_RULES},
    extra={"randomisation_blocks": DENSENET121_BLOCKS},
)

VIT_B_16_SPEC = _imagenet_spec("tv_vit_b_16", **torchvision_layout(12, (14, 14)))  # 224 px, 16 px patches
DEIT_TINY_SPEC = _imagenet_spec("deit_tiny_patch16_224", **timm_layout(12, 1, (14, 14)))  # class token, no dist


@register_arch("tv_vgg16", VGG16_SPEC)
def tv_vgg16(num_classes: int) -> nn.Module:
    """torchvision VGG16 (Simonyan & Zisserman 2015), 224 px; ImageNet weights with ``pretrained: imagenet``."""
    from torchvision.models import vgg16

    return _out_of_place(vgg16(num_classes=num_classes))


@register_arch("tv_resnet50", RESNET50_SPEC)
def tv_resnet50(num_classes: int) -> nn.Module:
    """torchvision ResNet50 (He et al. 2016), 224 px; ImageNet weights with ``pretrained: imagenet``."""
    from torchvision.models import resnet50

    return _out_of_place(resnet50(num_classes=num_classes))


@register_arch("tv_densenet121", DENSENET121_SPEC)
def tv_densenet121(num_classes: int) -> nn.Module:
    """torchvision DenseNet121 (Huang et al. 2017), 224 px; ImageNet weights with ``pretrained: imagenet``."""
    from torchvision.models import densenet121

    return hookable_densenet(densenet121(num_classes=num_classes))


def hookable_densenet(net: nn.Module) -> nn.Module:
    """A torchvision DenseNet (same weights) whose ``features`` end in a ReLU module the head reads directly."""
    net.__class__ = _densenet_class()
    net.features.add_module("relu5", nn.ReLU(inplace=False))
    return _out_of_place(net)


@functools.cache
def _densenet_class() -> type[nn.Module]:
    """torchvision's DenseNet whose head reads ``features`` (ending in the appended ReLU module) directly:
    torchvision's own forward applies an in-place functional ReLU there, which breaks autograd through a hook
    and hides the activation from DeepLIFT and LRP."""
    from torchvision.models import DenseNet

    class HookableDenseNet(DenseNet):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.classifier(torch.flatten(nn.functional.adaptive_avg_pool2d(self.features(x), 1), 1))

    return HookableDenseNet


@register_arch("tv_vit_b_16", VIT_B_16_SPEC)
def tv_vit_b_16(num_classes: int) -> nn.Module:
    """torchvision ViT-B/16 (Dosovitskiy et al. 2021), 224 px; the transformer methods, not the classic layer ones."""
    from torchvision.models import vit_b_16

    return vit_b_16(num_classes=num_classes)


@register_arch("deit_tiny_patch16_224", DEIT_TINY_SPEC)
def deit_tiny_patch16_224(num_classes: int) -> nn.Module:
    """timm DeiT-Ti/16 (Touvron et al. 2021), 224 px, unfused attention; the transformer methods."""
    import timm

    return unfuse_attention(timm.create_model("deit_tiny_patch16_224", pretrained=False, num_classes=num_classes))


def weights_cache() -> Path:
    """Where weight files are cached: ``$SALBENCH_WEIGHTS``, else the download cache."""
    from ..data.download import cache_dir

    return Path(os.environ[WEIGHTS_ENV]) if os.environ.get(WEIGHTS_ENV) else cache_dir()


#: DenseNet files of torchvision's first release name ``norm.1`` what the module calls ``norm1``
_DENSENET_OLD_KEY = re.compile(r"(denselayer\d+\.(?:norm|relu|conv))\.([12])\.")


def _torchvision_keys(arch: str, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A published file's state dict, keyed as the module names its parameters."""
    if arch == "tv_densenet121":
        return {_DENSENET_OLD_KEY.sub(r"\1\2.", key): value for key, value in state.items()}
    if isinstance(state.get("model"), dict):  # the DeiT authors' files wrap the state dict
        return state["model"]
    return state


def pretrained_model(arch: str, weights: str = "imagenet", cache: Path | None = None,
                     remote: Remote | None = None, progress: bool = True) -> NormalizedClassifier:
    """Architecture ``arch`` with its ``weights`` loaded from the verified cache (downloaded when missing).

    ``remote`` overrides the pinned file (tests serve one from 127.0.0.1); a wrong hash raises
    :class:`~salbench.data.download.ChecksumError` naming the file and both hashes.
    """
    spec = ARCHS.get(arch).spec
    if weights not in spec.extra.get("pretrained", []):
        raise ValueError(f"architecture {arch!r} has no {weights!r} weights; it has: "
                         f"{', '.join(spec.extra.get('pretrained', [])) or '(none)'}")
    from ..data.download import fetch_file

    path = fetch_file(remote or weights_remote(arch), cache if cache is not None else weights_cache(), progress=progress)
    state = torch.load(path, map_location="cpu", weights_only=True)
    model = build_model(arch, IMAGENET_CLASSES)
    model.net.load_state_dict(_torchvision_keys(arch, state))
    return model.eval()
