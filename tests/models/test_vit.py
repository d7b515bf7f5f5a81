"""Vision transformers: the demo's small_vit, the transformer spec of timm and torchvision ViTs (target layer, blocks,
randomisation stages, input layer, unfused attention), DeiT-Ti's weights from a local server, user ViTs by name,
and which methods the scheduler plans on a ViT."""

from __future__ import annotations

import hashlib
import io

import pytest
import torch
from torch import nn

from salbench.catalog import build_catalog
from salbench.data.download import Remote
from salbench.methods import METHODS
from salbench.model_config import is_vit_name, user_spec
from salbench.models import ARCHS, ModelSpec, NormalizedClassifier, build_model
from salbench.models.pretrained import WEIGHTS, pretrained_model
from salbench.models.user import fetch_model
from salbench.models.vit import vit_spec_fields
from salbench.sanity.randomisation import stage_groups

from data.conftest import http_server  # noqa: F401  (tests/data's local HTTP server fixture; tests/ is on sys.path)


def tiny_torchvision_vit(num_classes: int = 5) -> NormalizedClassifier:
    """A 2-layer torchvision ViT on 32 px (16 patch tokens), head re-initialised (torchvision zeroes it)."""
    from torchvision.models import VisionTransformer

    torch.manual_seed(0)
    net = VisionTransformer(image_size=32, patch_size=8, num_layers=2, num_heads=2, hidden_dim=16, mlp_dim=32,
                            num_classes=num_classes)
    nn.init.normal_(net.heads.head.weight, std=0.5)
    spec = ModelSpec(arch="tiny_tv_vit", input_size=32, mean=(0.5,) * 3, std=(0.2,) * 3, **vit_spec_fields(net))
    return NormalizedClassifier(net, spec).eval()


def test_small_vit_spec_names_its_layers_and_attention_is_unfused():
    model = build_model("small_vit", 6).eval()
    spec, modules = model.spec, dict(model.named_modules())
    assert spec.family == "vit" and spec.input_size == 64 and not spec.cpu_channels_last
    assert spec.target_layer == "net.blocks.3.norm1" and spec.target_layer in modules
    assert spec.extra["vit_blocks"] == [f"net.blocks.{b}" for b in range(4)]
    assert (spec.extra["prefix_tokens"], spec.extra["token_grid"]) == (1, [8, 8])
    assert isinstance(modules[spec.extra["input_layer"]], nn.Conv2d)
    # the registered (static) spec is what the built network says of itself
    derived = vit_spec_fields(model.net)
    assert (spec.target_layer, spec.extra, spec.lacks) == (derived["target_layer"], derived["extra"], derived["lacks"])
    attention = [m for m in model.modules() if hasattr(m, "fused_attn")]
    assert len(attention) == 4 and not any(m.fused_attn for m in attention)
    with torch.no_grad():
        assert model(torch.rand(2, 3, 64, 64)).shape == (2, 6)


def test_small_vit_stages_are_head_blocks_top_down_then_embedding():
    model = build_model("small_vit", 6).eval()
    blocks = model.spec.extra["randomisation_blocks"]
    groups = stage_groups(model, blocks=blocks)
    assert [name for name, _ in groups] == ["head", "block3", "block2", "block1", "block0", "embedding"]
    assert groups[0][1] == ["net.head", "net.norm"]
    assert set(groups[1][1]) == {f"net.blocks.3.{m}" for m in ("norm1", "attn.qkv", "attn.proj", "norm2", "mlp.fc1",
                                                                "mlp.fc2")}
    stem = [f"net.patch_embed.proj.{i}" for i in (12, 9, 8, 5, 4, 1, 0)]  # 1 x 1 projection, convs and batch norms
    assert groups[-1][1] == [*stem, "net"]  # net: the class token and position embeddings
    bottom_up = stage_groups(model, blocks=blocks, order="bottom_up", example=torch.rand(1, 3, 64, 64))
    assert [name for name, _ in bottom_up] == ["embedding", "block0", "block1", "block2", "block3", "head"]


def test_torchvision_vit_stages_cover_the_packed_attention_and_the_tokens():
    model = tiny_torchvision_vit()
    groups = dict(stage_groups(model, blocks=model.spec.extra["randomisation_blocks"]))
    assert list(groups) == ["head", "block1", "block0", "embedding"]
    assert "net.encoder.layers.encoder_layer_1.self_attention" in groups["block1"]  # owns in_proj_weight
    assert sorted(groups["embedding"]) == ["net", "net.conv_proj", "net.encoder"]  # class_token, pos_embedding
    assert model.spec.target_layer == "net.encoder.layers.encoder_layer_1.ln_1"
    assert model.spec.extra["input_layer"] == "net.conv_proj" and model.spec.extra["token_grid"] == [4, 4]


@pytest.mark.parametrize("arch", ["tv_vit_b_16", "deit_tiny_patch16_224"])
def test_imagenet_vits_have_the_transformer_spec(arch):
    model = build_model(arch, 10)
    spec, modules = model.spec, dict(model.named_modules())
    assert spec.family == "vit" and "parameter_randomisation" not in spec.lacks
    for layer in (spec.target_layer, spec.extra["input_layer"], *spec.extra["vit_blocks"]):
        assert layer in modules, layer
    groups = stage_groups(model, blocks=spec.extra["randomisation_blocks"])
    assert [name for name, _ in groups] == ["head", *(f"block{b}" for b in range(11, -1, -1)), "embedding"]
    assert not any(getattr(m, "fused_attn", False) for m in model.modules())


def test_deit_weights_download_from_a_local_server(http_server, tmp_path):  # noqa: F811
    import timm

    torch.manual_seed(3)
    state = timm.create_model("deit_tiny_patch16_224", pretrained=False).state_dict()
    buffer = io.BytesIO()
    torch.save({"model": state}, buffer)  # the DeiT authors' files wrap the state dict
    data = buffer.getvalue()
    http_server.files["/deit/deit-test.pth"] = data
    remote = Remote(http_server.url("deit/deit-test.pth"), hashlib.sha256(data).hexdigest()[:8], "deit-test.pth")
    model = pretrained_model("deit_tiny_patch16_224", cache=tmp_path, remote=remote, progress=False)
    assert model.spec.arch == "deit_tiny_patch16_224" and not model.training
    for key in ("cls_token", "pos_embed", "blocks.11.attn.qkv.weight", "head.weight"):
        torch.testing.assert_close(model.net.state_dict()[key], state[key])
    url, prefix, name = WEIGHTS["deit_tiny_patch16_224"]
    assert url.endswith(f"-{prefix}.pth") and url.rsplit("/", 1)[1] == name


@pytest.mark.parametrize(("source", "name", "vit"), [
    ("timm", "deit_tiny_patch16_224", True), ("timm", "vit_small_patch16_224.augreg_in21k", True),
    ("timm", "deit_tiny_distilled_patch16_224", True), ("timm", "deit3_small_patch16_224", True),
    ("torchvision", "vit_b_16", True), ("timm", "resnet18", False), ("timm", "vit_relpos_base_patch16_224", False),
    ("torchvision", "resnet50", False), ("torchscript", None, False)])
def test_vit_names(source, name, vit):
    assert is_vit_name(source, name) is vit


def test_user_timm_vit_by_name_gets_the_transformer_spec(tmp_path):
    import timm

    torch.manual_seed(0)
    net = timm.create_model("deit_tiny_patch16_224", pretrained=False, num_classes=4).eval()
    weights = tmp_path / "deit.pth"
    torch.save(net.state_dict(), weights)
    entry = {"arch": "user", "source": "timm", "name": "deit_tiny_patch16_224", "checkpoint": str(weights),
             "input_size": 224, "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225], "num_classes": 4}
    planned = user_spec("deit", entry)  # what the workflow plans from, without torch
    assert planned["family"] == "vit" and set(planned["lacks"]) == {"spatial_feature_maps", "propagation_rules",
                                                                   "relu_activations", "any_input_size"}
    fetch_model("deit", entry, tmp_path / "deit.pt", progress=False)
    from salbench.models import load_checkpoint

    model = load_checkpoint(tmp_path / "deit.pt")
    assert model.spec.family == "vit" and model.spec.target_layer == "net.blocks.11.norm1"
    assert model.spec.extra["input_layer"] == "net.patch_embed.proj"
    assert len(stage_groups(model, blocks=model.spec.extra["randomisation_blocks"])) == 14
    assert not any(getattr(m, "fused_attn", False) for m in model.modules())
    x = torch.rand(1, 3, 224, 224)
    with torch.no_grad():
        torch.testing.assert_close(model(x), net((x - model.mean) / model.std))


def test_scheduler_plans_transformer_and_model_agnostic_methods_on_a_vit_and_skips_cnn_ones():
    vit, cnn = ARCHS.get("small_vit").spec, ARCHS.get("small_cnn").spec
    catalog = build_catalog()["methods"]
    transformer = [name for name in METHODS.names() if METHODS.get(name).model_family == "vit"]
    assert transformer, "no method declares model_family 'vit'"

    def reason(name, spec):
        cls = METHODS.get(name)
        return cls.skip_reason(cls.__new__(cls), spec)

    for name in transformer:
        assert reason(name, vit) is None and catalog[name]["model_family"] == "vit"
        assert "needs a vit model, small_cnn is cnn" in reason(name, cnn)
    for name in ("gradient", "integrated_gradients", "smoothgrad", "rise", "occlusion", "random", "sobel", "centre"):
        assert reason(name, vit) is None, name
    for name in ("excitation_backprop", "rsp", "rap", "lrp_epsilon"):
        assert any(why in reason(name, vit) for why in vit.lacks.values()), name
    assert "global average pooling" in reason("cam", vit)
    for name in ("guided_backprop", "deconvnet", "guided_gradcam", "guided_backprop@captum", "guided_backprop@zennit"):
        assert reason(name, vit) == f"{name} needs relu_activations: {vit.lacks['relu_activations']}", name
        assert reason(name, cnn) is None, name
    assert "needs a coda model" in reason("coda_contributions", vit)


def test_guided_backprop_on_a_vit_is_the_plain_gradient_hence_the_lack():
    """Why ``relu_activations`` is in the ViT's lacks: with no ReLU module to guide, the rule is the gradient."""
    from salbench.methods.backprop import deconvnet, guided_backprop

    torch.manual_seed(0)
    model = build_model("small_vit", 6).eval()
    x, target = torch.rand(2, 3, 64, 64), torch.tensor([1, 4])
    x.requires_grad_()
    (gradient,) = torch.autograd.grad(model(x).gather(1, target.view(-1, 1)).sum(), x)
    for rule in (guided_backprop, deconvnet):
        torch.testing.assert_close(rule(model, x.detach(), target), gradient)
    assert not any(isinstance(m, nn.ReLU) for m in model.modules())


def test_small_vit_stem_strides_by_the_patch_size_and_refuses_another():
    from salbench.models.vit import PATCH_SIZE, STEM_WIDTHS, conv_stem

    stem = conv_stem(3, 24, STEM_WIDTHS, PATCH_SIZE)
    assert stem(torch.rand(1, 3, 64, 64)).shape == (1, 24, 64 // PATCH_SIZE, 64 // PATCH_SIZE)
    with pytest.raises(ValueError, match="stride 8, not patch size 16"):
        conv_stem(3, 24, STEM_WIDTHS, 16)
