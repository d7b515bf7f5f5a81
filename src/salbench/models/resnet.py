"""``small_resnet``: a narrow timm ResNet (BasicBlock, blocks [1, 2, 2, 1]) for 64 px inputs.

A deep 3x3 stem and ``output_stride=8`` (dilated last two stages) keep ``layer4`` at 8 x 8 for
64 px inputs, fine enough for Grad-CAM. timm builds its ReLUs in-place; they are switched to
out-of-place here because DeepLIFT and LRP hooks need each activation's own output.
"""

from __future__ import annotations

from torch import nn

from .base import ModelSpec, register_arch

SPEC = ModelSpec(
    arch="small_resnet",
    input_size=64,
    mean=(0.5, 0.5, 0.5),
    std=(0.25, 0.25, 0.25),
    target_layer="net.layer4",
    gap_fc=True,
    cpu_channels_last=True,
    layerwise=("net.layer1", "net.layer2", "net.layer3", "net.layer4"),  # the stages' outputs (after their ReLU)
    extra={
        "excitation_layer": "net.layer3",  # TorchRay's ResNet50 excitation-backprop layer
        # top-down blocks for the randomisation checks: the head, the four stages, the stem
        "randomisation_blocks": [["fc", ["net.fc"]], *([f"layer{k}", [f"net.layer{k}"]] for k in (4, 3, 2, 1)),
                                 ["stem", ["net.conv1", "net.bn1"]]],
    },
)


@register_arch("small_resnet", SPEC)
def small_resnet(num_classes: int) -> nn.Module:
    """Narrow timm ResNet (BasicBlock [1,2,2,1], widths 16-128, output stride 8), 64 px input."""
    from timm.models.resnet import BasicBlock, ResNet  # timm imports torchvision: ~2 s a job that never builds one

    net = ResNet(
        block=BasicBlock,
        layers=(1, 2, 2, 1),
        channels=(16, 32, 64, 128),
        stem_type="deep",
        stem_width=8,
        output_stride=8,
        num_classes=num_classes,
    )
    for module in net.modules():
        if isinstance(module, nn.ReLU):
            module.inplace = False
    return net
