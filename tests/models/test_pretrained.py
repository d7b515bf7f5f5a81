"""Pretrained torchvision archs: specs that name real layers, weights fetched with a pinned hash from a local
server (wrong and right hash, prefix pins, offline reuse of the cache), and CNN-only methods skipped on a ViT."""

from __future__ import annotations

import hashlib
import io

import pytest
import torch
from torch import nn

from salbench.catalog import build_catalog
from salbench.data.download import ChecksumError, Remote, sha256_matches
from salbench.methods import METHODS, create_method
from salbench.models import ARCHS, build_model
from salbench.models.pretrained import WEIGHTS, _torchvision_keys, pretrained_model, weights_remote
from salbench.sanity.randomisation import stage_groups

from data.conftest import http_server  # noqa: F401  (tests/data's local HTTP server fixture; tests/ is on sys.path)

TV_ARCHS = ("tv_vgg16", "tv_resnet50", "tv_densenet121", "tv_vit_b_16")


def _state_bytes(state: dict[str, torch.Tensor]) -> bytes:
    buffer = io.BytesIO()
    torch.save(state, buffer)
    return buffer.getvalue()


@pytest.mark.parametrize("arch", TV_ARCHS)
def test_specs_name_layers_of_the_architecture(arch):
    model = build_model(arch, 10)
    spec = model.spec
    assert (spec.input_size, spec.mean, spec.std) == (224, (0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
    assert spec.extra["pretrained"] == ["imagenet"]
    names = dict(model.named_modules())
    for layer in (spec.target_layer, spec.layer("excitation_layer"), *spec.layerwise):
        assert layer in names, layer
    assert not any(m.inplace for m in model.modules() if isinstance(m, nn.ReLU))  # hooks need out-of-place
    blocks = spec.extra.get("randomisation_blocks")
    if blocks is not None:  # every parameterised layer in exactly one top-down block (stage_groups checks)
        groups = stage_groups(model, blocks=blocks)
        assert groups[0][0] in ("fc8", "fc", "classifier", "head")


def test_torchray_layers():
    assert ARCHS.get("tv_vgg16").spec.target_layer == "net.features.29"
    assert ARCHS.get("tv_vgg16").spec.layer("excitation_layer") == "net.features.23"
    assert ARCHS.get("tv_resnet50").spec.target_layer == "net.layer4"
    assert ARCHS.get("tv_resnet50").spec.layer("excitation_layer") == "net.layer3"
    assert ARCHS.get("tv_densenet121").spec.target_layer == "net.features"


def test_densenet_features_are_rectified_and_logits_unchanged():
    from torchvision.models import densenet121

    torch.manual_seed(0)
    ours = build_model("tv_densenet121", 5).eval()
    reference = densenet121(num_classes=5).eval()
    reference.load_state_dict(ours.net.state_dict())  # the appended ReLU holds no weights
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        assert (ours.net.features(x) >= 0).all()
        torch.testing.assert_close(ours(x), reference((x - ours.mean) / ours.std))
    # torchvision's in-place functional ReLU after the features broke autograd under activation hooks
    maps = create_method("gradient").attribute(ours, x[:1], torch.tensor([3]))
    assert maps.shape == (1, 32, 32) and torch.isfinite(maps).all() and maps.abs().sum() > 0


def test_old_densenet_keys_are_renamed():
    state = {"features.denseblock1.denselayer1.norm.1.weight": 1, "features.denseblock1.denselayer12.conv.2.weight": 2,
             "features.norm5.weight": 3}
    assert _torchvision_keys("tv_densenet121", state) == {
        "features.denseblock1.denselayer1.norm1.weight": 1, "features.denseblock1.denselayer12.conv2.weight": 2,
        "features.norm5.weight": 3}


def test_pinned_weights_embed_the_url_hash_prefix():
    for arch in TV_ARCHS:
        remote = weights_remote(arch)
        prefix = remote.url.rsplit("-", 1)[1].removesuffix(".pth")
        assert remote.sha256.startswith(prefix) and remote.name == remote.url.rsplit("/", 1)[1]
    assert len(WEIGHTS["tv_resnet50"][1]) == 64  # the one full sha256 found published


def test_prefix_matching():
    digest = hashlib.sha256(b"x").hexdigest()
    assert sha256_matches(digest, digest) and sha256_matches(digest, digest[:8]) and sha256_matches(digest, digest.upper())
    assert not sha256_matches(digest, digest[:7])  # too short to mean anything
    assert not sha256_matches(digest, "0" * 64) and not sha256_matches(digest, digest[1:9])


@pytest.fixture(scope="module")
def resnet_weights() -> tuple[dict[str, torch.Tensor], bytes]:
    """A seeded ResNet50 state dict in torchvision's key format, as the bytes a weight file holds."""
    from torchvision.models import resnet50

    torch.manual_seed(1)
    state = resnet50().state_dict()
    return state, _state_bytes(state)


def test_weights_download_verify_and_offline_reuse(http_server, tmp_path, resnet_weights):  # noqa: F811
    state, data = resnet_weights
    digest = hashlib.sha256(data).hexdigest()
    http_server.files["/models/resnet50-test.pth"] = data
    url = http_server.url("models/resnet50-test.pth")

    wrong = "0" * 64
    with pytest.raises(ChecksumError) as err:
        pretrained_model("tv_resnet50", cache=tmp_path, remote=Remote(url, wrong, "resnet50-test.pth"), progress=False)
    message = str(err.value)
    assert url in message and digest in message and wrong in message and "resnet50-test.pth" in message
    assert sorted(p.name for p in tmp_path.iterdir()) == ["resnet50-test.pth.lock"]  # nothing partial left

    model = pretrained_model("tv_resnet50", cache=tmp_path, remote=Remote(url, digest, "resnet50-test.pth"),
                             progress=False)
    assert not model.training and model.spec.arch == "tv_resnet50"
    for key, value in state.items():
        torch.testing.assert_close(model.net.state_dict()[key], value)
    served = len(http_server.requests)

    # offline: the server address is gone; the verified cached copy is used without a request
    offline = Remote("http://127.0.0.1:9/models/resnet50-test.pth", digest[:8], "resnet50-test.pth")
    again = pretrained_model("tv_resnet50", cache=tmp_path, remote=offline, progress=False)
    torch.testing.assert_close(again.net.fc.weight, state["fc.weight"])
    assert len(http_server.requests) == served

    # a cached file that no longer matches its pin is refused, naming the file and both hashes
    with pytest.raises(ChecksumError, match=f"resnet50-test.pth: sha256 {digest} does not match the pinned deadbeef"):
        pretrained_model("tv_resnet50", cache=tmp_path, remote=Remote(url, "deadbeef", "resnet50-test.pth"),
                         progress=False)


def test_weights_cache_env(monkeypatch, tmp_path):
    from salbench.models.pretrained import weights_cache

    monkeypatch.setenv("SALBENCH_DOWNLOADS", str(tmp_path / "downloads"))
    monkeypatch.delenv("SALBENCH_WEIGHTS", raising=False)
    assert weights_cache() == tmp_path / "downloads"
    monkeypatch.setenv("SALBENCH_WEIGHTS", str(tmp_path / "weights"))
    assert weights_cache() == tmp_path / "weights"


def test_no_weights_for_an_architecture_is_an_error():
    with pytest.raises(ValueError, match="'small_cnn' has no 'imagenet' weights"):
        pretrained_model("small_cnn")


def test_cnn_only_methods_are_skipped_on_a_vit_with_a_reason():
    spec = ARCHS.get("tv_vit_b_16").spec
    catalog = build_catalog()["methods"]
    cnn_only = [n for n in METHODS.names() if set(METHODS.get(n).capabilities()) & set(spec.lacks)]
    assert {"excitation_backprop", "rsp", "lrp_epsilon"} <= set(cnn_only)
    for name in cnn_only:
        cls = METHODS.get(name)
        reason = cls.skip_reason(cls.__new__(cls), spec)
        assert reason and any(why in reason for why in spec.lacks.values()), name
        assert set(catalog[name]["requires"]) & set(spec.lacks)  # what the workflow's skip_reason reads
    assert "zennit's LRP" in create_method("lrp_epsilon").skip_reason(spec)
    assert create_method("gradient").skip_reason(spec) is None
    assert create_method("gradcam", layer="net.layer4").skip_reason(ARCHS.get("tv_resnet50").spec) is None
