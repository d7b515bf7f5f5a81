"""CAM family: agreement with pytorch_grad_cam where the formulas coincide, FEM by hand, CAM vs Grad-CAM."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from pytorch_grad_cam import AblationCAM, GradCAMPlusPlus, HiResCAM, LayerCAM, ScoreCAM, XGradCAM
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
from pytorch_grad_cam.utils.svd_on_activations import get_2d_projection

from salbench.methods import create_method
from salbench.methods.cam_family import fem_map, layer_activations
from salbench.params import ParamError

from .helpers import SIZE, images, quadrant_model, tiny_model
from .threads import one_thread  # noqa: F401  (fixture)
from .test_cam import minmax

REFERENCES = {
    "gradcam_pp": GradCAMPlusPlus,
    "xgradcam": XGradCAM,
    "hirescam": HiResCAM,
    "layercam": LayerCAM,
    "ablationcam": AblationCAM,
}

pytestmark = pytest.mark.usefixtures("one_thread")


def reference(cls, model, layer: str, x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    model = copy.deepcopy(model)
    targets = [ClassifierOutputTarget(int(t)) for t in target]
    with cls(model=model, target_layers=[model.get_submodule(layer)]) as cam:
        return torch.from_numpy(cam(input_tensor=x.clone(), targets=targets))


@pytest.mark.parametrize("name", sorted(REFERENCES))
def test_agrees_with_pytorch_grad_cam_at_layer_resolution(name):
    model, x, target = tiny_model(), images(4), torch.tensor([3, 0, 2, 1])
    maps = create_method(name, layer="net.relu2").attribute(model, x, target)
    assert (maps.flatten(1).amax(1) > 0).all()
    theirs = reference(REFERENCES[name], model, "net.relu2", x, target)
    torch.testing.assert_close(minmax(maps), theirs, rtol=0, atol=1e-4)


def test_eigencam_is_the_relu_of_the_first_principal_projection():
    model, x = tiny_model(), images(3)
    maps = create_method("eigencam", layer="net.relu2").attribute(model, x, torch.tensor([0, 1, 2]))
    acts, _ = layer_activations(model, model.get_submodule("net.relu2"), x)
    projections = torch.from_numpy(get_2d_projection(acts.numpy()))
    for ours, projection in zip(maps, projections):
        assert any(torch.allclose(ours, (s * projection).clamp(min=0), atol=1e-4) for s in (1, -1))


def test_scorecam_channel_scores_match_pytorch_grad_cam_weights():
    model, x, target = tiny_model(), images(2), torch.tensor([1, 3])
    layer = model.get_submodule("net.relu2")
    method = create_method("scorecam", layer="net.relu2", baseline="black", max_batch=5)
    acts, _ = layer_activations(model, layer, x)
    logits, _ = method.channel_scores(model, x, acts, target)
    ours = logits.gather(2, target.view(-1, 1, 1).expand(-1, logits.shape[1], 1)).squeeze(2).softmax(dim=1)
    ref = ScoreCAM(model=copy.deepcopy(model), target_layers=[layer])
    weights = ref.get_cam_weights(x, None, [ClassifierOutputTarget(int(t)) for t in target], acts.numpy(), None)
    torch.testing.assert_close(ours, torch.from_numpy(np.asarray(weights)), rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("name", ["scorecam", "ablationcam", "gradcam_pp", "layercam", "cam"])
def test_peaks_in_the_only_quadrant_the_model_sees(name):
    model, x = quadrant_model(), images(3)
    maps = create_method(name, layer="net.relu", upsample="nearest").attribute(model, x, torch.tensor([0, 1, 2]))
    half = SIZE // 2
    peaks = maps.flatten(1).argmax(1)
    assert ((peaks // SIZE < half + 1) & (peaks % SIZE < half + 1)).all()


def test_fem_on_a_hand_made_activation_tensor():
    acts = torch.zeros(1, 2, 3, 3)
    acts[0, 0, 0, 0] = 9.0  # mean 1, population std sqrt(8): 9 > 1 + 2 sqrt(8) = 6.66
    acts[0, 1] = torch.tensor([[4.0, 0, 0], [0, 0, 0], [0, 0, 0]])  # mean 4/9, std 1.257: 4 > 2.96
    acts[0, 1, 2, 2] = 0.5  # 0.5 < threshold
    mu1 = (4.5 / 9)
    expected = torch.zeros(1, 3, 3)
    expected[0, 0, 0] = 1.0 + mu1
    torch.testing.assert_close(fem_map(acts, 2.0), expected / expected.max())
    assert (fem_map(torch.ones(2, 3, 4, 4), 2.0) == 0).all()


def test_fem_divides_by_any_nonzero_maximum_as_the_reference():
    # labribkb/fem aggregate_binary_maps: `if np.max(feat_map) == 0: return feat_map`, else feat_map / max,
    # so pre-ReLU maps with negative channel means keep their signs or are divided by a negative maximum.
    one = torch.tensor([[-4.0, -4.0], [-4.0, 2.0]]).view(1, 1, 2, 2)  # mean -2.5, std sqrt(6.75) = 2.598
    # k = 1: threshold -2.5 + 2.598 = 0.098, only the 2 passes; map [[0, 0], [0, -2.5]] has maximum 0
    torch.testing.assert_close(fem_map(one, 1.0), torch.tensor([[[0.0, 0.0], [0.0, -2.5]]]))
    # four channels, each with three equal low pixels and one high pixel (always above mean + 1 std):
    # (low, high) = (-4, 2), (-8, 4), (-4, 0), (-6, 2): means -2.5, -5, -3, -4, at pixels (0,0), (0,1), (1,0), (1,1)
    acts = torch.zeros(1, 4, 2, 2)
    for c, (low, high) in enumerate([(-4.0, 2.0), (-8.0, 4.0), (-4.0, 0.0), (-6.0, 2.0)]):
        acts[0, c].fill_(low)
        acts[0, c].view(-1)[c] = high
    # map [[-2.5, -5], [-3, -4]], maximum -2.5
    torch.testing.assert_close(fem_map(acts, 1.0), torch.tensor([[[1.0, 2.0], [1.2, 1.6]]]))


def test_cam_is_relu_free_gradcam_times_a_positive_factor():
    model, x, target = tiny_model(), images(4), torch.tensor([0, 1, 2, 3])
    cam = create_method("cam", layer="net.relu3", upsample="nearest").attribute(model, x, target)
    gradcam = create_method("gradcam", layer="net.relu3", upsample="nearest").attribute(model, x, target)
    assert (cam < 0).any()  # signed, as in the paper
    torch.testing.assert_close(cam.clamp(min=0), gradcam * (SIZE // 2) ** 2, rtol=1e-4, atol=1e-5)


def test_cam_needs_the_layer_feeding_the_classifier():
    with pytest.raises(ParamError, match="channels"):
        create_method("cam", layer="net.relu1").attribute(tiny_model(), images(1), torch.tensor([0]))
