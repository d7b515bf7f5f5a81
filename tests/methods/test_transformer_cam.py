"""The CAM family on a vision transformer's token grid: parity with pytorch-grad-cam's ``reshape_transform``."""

from __future__ import annotations

import copy

import pytest
import torch
from pytorch_grad_cam import GradCAM, GradCAMPlusPlus, HiResCAM, LayerCAM, XGradCAM
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

from salbench.catalog import build_catalog
from salbench.methods import METHODS, create_method
from salbench.methods.cam import LAYER_MAPS, capture
from salbench.methods.transformer_attention import TokenLayout, token_layout

from .test_cam import minmax
from .threads import one_thread  # noqa: F401  (fixture)
from .transformer_models import pixels, spec, tiny_tv_vit, tiny_vit

pytestmark = pytest.mark.usefixtures("one_thread")
TARGET = torch.tensor([1, 3, 0])
REFERENCES = {"gradcam": GradCAM, "gradcam_pp": GradCAMPlusPlus, "xgradcam": XGradCAM, "hirescam": HiResCAM,
              "layercam": LayerCAM}
#: every CAM method that runs on tokens (CAM itself needs GAP + FC, which a ViT is not)
TOKEN_CAMS = (*REFERENCES, "eigencam", "fem", "scorecam", "ablationcam")


def reshape_transform(tokens: torch.Tensor) -> torch.Tensor:
    """pytorch-grad-cam's ViT tutorial transform for one class token and a 4 x 4 grid."""
    return tokens[:, 1:].reshape(tokens.shape[0], 4, 4, tokens.shape[2]).permute(0, 3, 1, 2)


@pytest.mark.parametrize("name", sorted(REFERENCES))
def test_token_cams_match_pytorch_grad_cam(name):
    model, x = tiny_vit(), pixels(3)
    layer = model.spec.target_layer
    maps = create_method(name, layer=layer).attribute(model, x, TARGET)
    assert (maps.flatten(1).amax(1) > 0).all()
    reference = copy.deepcopy(model)
    targets = [ClassifierOutputTarget(int(t)) for t in TARGET]
    with REFERENCES[name](model=reference, target_layers=[reference.get_submodule(layer)],
                          reshape_transform=reshape_transform) as cam:
        theirs = torch.from_numpy(cam(input_tensor=x.clone(), targets=targets))
    torch.testing.assert_close(minmax(maps), theirs, rtol=0, atol=1e-4)


@pytest.mark.parametrize("build", [tiny_vit, tiny_tv_vit])
@pytest.mark.parametrize("name", TOKEN_CAMS)
def test_token_cams_run_batched_on_both_layouts(build, name):
    model, x = build(), pixels(3)
    method = create_method(name, layer=model.spec.target_layer, **({"max_batch": 16} if "max_batch" in
                                                                    METHODS.get(name).defaults else {}))
    maps = method.attribute(model, x, TARGET)
    assert maps.shape == (3, 32, 32) and torch.isfinite(maps).all()
    per_item = torch.cat([method.attribute(model, x[i : i + 1], TARGET[i : i + 1]) for i in range(3)])
    torch.testing.assert_close(maps, per_item, rtol=1e-4, atol=1e-6)


def test_the_grid_is_the_row_major_patch_tokens_and_the_model_is_unchanged():
    model, x = tiny_vit(), pixels(2)
    layout = token_layout(model)
    assert layout == TokenLayout(1, (4, 4))
    tokens = torch.arange(2 * 17 * 3.0).reshape(2, 17, 3)
    grid = layout.to_grid(tokens)
    assert grid.shape == (2, 3, 4, 4) and torch.equal(grid[1, :, 2, 1], tokens[1, 1 + 2 * 4 + 1])
    assert torch.equal(layout.from_grid(grid, tokens), tokens)
    with torch.no_grad():
        plain = model(x)
        with capture(model.get_submodule(model.spec.target_layer), tokens=layout) as seen:
            hooked = model(x)
    assert torch.equal(plain, hooked) and seen[0].shape == (2, 32, 4, 4)
    with pytest.raises(ValueError, match="1 prefix \\+ 16 patch tokens, got 10"):
        layout.to_grid(torch.zeros(1, 10, 3))


def test_token_cams_apply_to_vits_and_the_classic_layer_methods_do_not():
    vit = spec("net.blocks.1.norm1", 32)
    catalog = build_catalog()["methods"]
    for name in TOKEN_CAMS:
        assert create_method(name, layer="x").skip_reason(vit) is None, name
        assert LAYER_MAPS in catalog[name]["requires"]
    for name in ("gradcam@captum", "gradcam@pytorch_grad_cam"):  # read the layer without the token reshape
        cls = METHODS.get(name)
        assert "spatial_feature_maps" in cls.skip_reason(cls.__new__(cls), vit)
    no_layer = spec("", 32).__class__(**{**vars(spec("", 32)), "lacks": {LAYER_MAPS: "no target layer"}})
    assert "no target layer" in create_method("gradcam", layer="x").skip_reason(no_layer)
