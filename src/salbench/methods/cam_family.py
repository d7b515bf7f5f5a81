"""Class activation maps beyond Grad-CAM: gradient-weighted, score-weighted and gradient-free variants.

Every method reads the activations ``A`` (``[B,K,h,w]``) of the ``layer`` param (the model spec's target
layer), combines them into one ``[B,h,w]`` layer map and upsamples it by the recorded ``upsample`` mode.
Maps are not min-max normalised (FEM divides by its maximum because the paper's formula does).
Hooks live only inside :func:`~salbench.methods.cam.capture`, which always removes them; gradients come from
:func:`torch.autograd.grad`, so parameters' ``.grad`` stay untouched.
"""

from __future__ import annotations

import abc
from typing import Any

import torch
from torch import nn

from ..params import ParamError, check_choice
from ..stats import min_max
from .base import check_number, normalisation, register_method
from .cam import LayerMapMethod, activations_and_grads, capture, resolve_layer
from .postprocess import UPSAMPLE_MODES, upsample
from .transformer_attention import token_layout

#: pytorch_grad_cam's and the Grad-CAM++ paper's guard against a zero denominator
EPS = 1e-6


def layer_activations(model: nn.Module, layer: nn.Module, inputs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Detached ``(A, logits)`` of ``layer`` for ``inputs`` (no graph)."""
    with torch.no_grad(), capture(layer, tokens=token_layout(model)) as outputs:
        logits = model(inputs)
    return outputs[0], logits


def weighted_sum(weights: torch.Tensor, activations: torch.Tensor) -> torch.Tensor:
    """``sum_k w_k A_k``: ``[B,K]`` or ``[B,K,h,w]`` weights with ``[B,K,h,w]`` activations -> ``[B,h,w]``."""
    if weights.dim() == 2:
        weights = weights[:, :, None, None]
    return (weights * activations).sum(dim=1)


class ActivationMapMethod(LayerMapMethod):
    """A layer-map method: subclasses implement :meth:`layer_map`; upsampling is the recorded step."""

    defaults = {"layer": None, "upsample": "bilinear"}

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        check_choice("method", self.name, "upsample", self.params["upsample"], UPSAMPLE_MODES)

    @abc.abstractmethod
    def layer_map(self, model: nn.Module, layer: nn.Module, inputs: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """``[B,h,w]`` map at the layer's resolution."""

    def attribute(self, model: nn.Module, inputs: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        layer = resolve_layer(self, model)
        maps = self.layer_map(model, layer, inputs, target)
        return upsample(maps.to(torch.float32), tuple(inputs.shape[-2:]), self.params["upsample"])


@register_method("gradcam_pp")
class GradCAMPlusPlus(ActivationMapMethod):
    """Grad-CAM++ (Chattopadhay et al. 2018, eq. 19 with the exponential-score trick).

    ``alpha = g^2 / (2 g^2 + sum_ab A^ab g^3)`` (0 where ``g = 0``), ``w_k = sum_ij alpha_k^ij ReLU(g_k^ij)``,
    map ``ReLU(sum_k w_k A_k)``. With ``Y = exp(S_c)`` the paper's weights are these times ``exp(S_c)``,
    a positive per-item factor, which is dropped (as pytorch_grad_cam does).
    """

    citation = (
        "Chattopadhay, Sarkar, Howlader & Balasubramanian. Grad-CAM++: Generalized Gradient-based Visual "
        "Explanations for Deep Convolutional Networks. WACV 2018. arXiv:1710.11063"
    )

    def layer_map(self, model, layer, inputs, target):
        acts, grads, _ = activations_and_grads(model, layer, inputs, target)
        g2 = grads.pow(2)
        denominator = 2 * g2 + acts.sum(dim=(2, 3), keepdim=True) * g2 * grads + EPS
        alpha = torch.where(grads != 0, g2 / denominator, torch.zeros_like(grads))
        weights = (alpha * grads.clamp(min=0)).sum(dim=(2, 3))
        return weighted_sum(weights, acts).clamp(min=0)


@register_method("xgradcam")
class XGradCAM(ActivationMapMethod):
    """XGrad-CAM (Fu et al. 2020): ``w_k = sum_ij A_k^ij g_k^ij / sum_ij A_k^ij``, map ``ReLU(sum_k w_k A_k)``."""

    citation = (
        "Fu, Hu, Dong, Guo, Gao & Li. Axiom-based Grad-CAM: Towards Accurate Visualization and Explanation "
        "of CNNs. BMVC 2020. arXiv:2008.02312"
    )

    def layer_map(self, model, layer, inputs, target):
        acts, grads, _ = activations_and_grads(model, layer, inputs, target)
        weights = (acts * grads).sum(dim=(2, 3)) / (acts.sum(dim=(2, 3)) + EPS)
        return weighted_sum(weights, acts).clamp(min=0)


@register_method("hirescam")
class HiResCAM(ActivationMapMethod):
    """HiResCAM (Draelos & Carin 2020): element-wise ``ReLU(sum_k g_k * A_k)`` (no spatial gradient averaging)."""

    citation = (
        "Draelos & Carin. Use HiResCAM instead of Grad-CAM for faithful explanations of convolutional "
        "neural networks. arXiv:2011.08891, 2020"
    )

    def layer_map(self, model, layer, inputs, target):
        acts, grads, _ = activations_and_grads(model, layer, inputs, target)
        return weighted_sum(grads, acts).clamp(min=0)


@register_method("layercam")
class LayerCAM(ActivationMapMethod):
    """LayerCAM (Jiang et al. 2021): ``ReLU(sum_k ReLU(g_k) * A_k)``, position-wise positive-gradient weights."""

    citation = (
        "Jiang, Zhang, Hou, Cheng & Wei. LayerCAM: Exploring Hierarchical Class Activation Maps for "
        "Localization. IEEE TIP 30:5875-5888, 2021"
    )

    def layer_map(self, model, layer, inputs, target):
        acts, grads, _ = activations_and_grads(model, layer, inputs, target)
        return weighted_sum(grads.clamp(min=0), acts).clamp(min=0)


@register_method("eigencam")
class EigenCAM(ActivationMapMethod):
    """Eigen-CAM (Muhammad & Yeasin 2020): projection of the centred activations on their first principal axis.

    Class-agnostic. The SVD's sign is arbitrary; it is fixed so that the principal axis has a
    non-negative sum over channels (aligned with the mostly positive post-ReLU activations), then ReLU.
    """

    citation = (
        "Muhammad & Yeasin. Eigen-CAM: Class Activation Map using Principal Components. IJCNN 2020. "
        "arXiv:2008.00299"
    )

    def layer_map(self, model, layer, inputs, target):
        acts, _ = layer_activations(model, layer, inputs)
        b, k, h, w = acts.shape
        rows = acts.flatten(2).transpose(1, 2)  # [B, hw, K]
        rows = rows - rows.mean(dim=1, keepdim=True)
        _, _, vh = torch.linalg.svd(rows.double(), full_matrices=False)
        axis = vh[:, 0, :]  # [B, K]
        axis = axis * torch.where(axis.sum(dim=1, keepdim=True) < 0, -1.0, 1.0).to(axis)
        projection = (rows.double() @ axis.unsqueeze(2)).squeeze(2).to(acts.dtype)
        return projection.view(b, h, w).clamp(min=0)


@register_method("fem")
class FEM(ActivationMapMethod):
    """Feature Explanation Method (Fuad et al. 2020; Ayyar et al. 2021): gradient-free and class-agnostic.

    Follows the authors' ``labribkb/fem`` ``FEM.ipynb`` (``compute_binary_maps``, ``aggregate_binary_maps``):
    ``B_k = 1[A_k > mu_k + K sigma_k]`` (strict; spatial mean and population std per channel), weights
    ``w_k = mu_k``, map ``sum_k w_k B_k`` divided by its maximum unless that maximum is 0 (then returned as
    is), per item (:func:`fem_map`). Not pytorch_grad_cam's ``fem`` (which weights ``A_k`` by ``mean(B_k)``);
    xplique's FEM thresholds with ``>=`` and does not divide by the maximum. The reference code returns the
    layer-resolution map; here it is upsampled by the CAM family's recorded mode (bilinear; xplique: bicubic).
    """

    citation = (
        "Fuad, Martin, Giot, Bourqui, Benois-Pineau & Zemmari. Features Understanding in 3D CNNs for Actions "
        "Recognition in Video. IPTA 2020; Ayyar, Benois-Pineau & Zemmari. White Box Methods for "
        "Explanations of CNNs in Image Classification. arXiv:2104.02548, 2021"
    )
    #: K = 2 standard deviations (paper); xplique upsamples bicubically, here the recorded default is bilinear
    defaults = {"layer": None, "upsample": "bilinear", "k": 2.0}

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        check_number(self, "k", 0.0)

    def layer_map(self, model, layer, inputs, target):
        acts, _ = layer_activations(model, layer, inputs)
        return fem_map(acts, float(self.params["k"]))


def fem_map(acts: torch.Tensor, k: float) -> torch.Tensor:
    """FEM of ``[B,K,h,w]`` activations: ``F = sum_k mu_k 1[A_k > mu_k + k sigma_k]``, then ``F / max F``
    per item where ``max F != 0`` (a negative maximum too, as the reference divides by any non-zero one)."""
    mu = acts.mean(dim=(2, 3), keepdim=True)
    sigma = acts.std(dim=(2, 3), keepdim=True, unbiased=False)
    binary = (acts > mu + k * sigma).to(acts.dtype)
    fem = weighted_sum(mu.flatten(1), binary)
    peak = fem.flatten(1).amax(dim=1).view(-1, 1, 1)
    return fem / torch.where(peak != 0, peak, torch.ones_like(peak))


def chunked_logits(model: nn.Module, rows: torch.Tensor, max_batch: int) -> torch.Tensor:
    """``model`` logits of ``rows`` evaluated ``max_batch`` rows at a time (no graph)."""
    with torch.no_grad():
        return torch.cat([model(rows[i : i + max_batch]) for i in range(0, rows.shape[0], max_batch)])


def masked_inputs(model: nn.Module, inputs: torch.Tensor, masks: torch.Tensor, baseline: str) -> torch.Tensor:
    """``[B,N,C,H,W]`` inputs for ``[B,N,H,W]`` masks in [0, 1]: ``base + m (x - base)``.

    ``baseline="mean"`` multiplies the normalised input (masked-out = the model's mean colour), as the
    ImageNet reference code does; ``"black"`` multiplies the pixel-space input.
    """
    _, mean, _ = normalisation(model)
    if baseline == "mean":
        base = torch.as_tensor(mean, dtype=inputs.dtype, device=inputs.device).expand_as(inputs).unsqueeze(1)
    else:
        base = torch.zeros_like(inputs).unsqueeze(1)
    return base + masks.unsqueeze(2) * (inputs.unsqueeze(1) - base)


@register_method("scorecam")
class ScoreCAM(ActivationMapMethod):
    """Score-CAM (Wang et al. 2020): each channel weighted by the target score of the input masked by it.

    ``H_k`` = min-max normalised, upsampled ``A_k`` (constant channels get weight 0, as in the authors'
    code); ``w_k = softmax(f(x * H_k))_c`` (``score="softmax"``, the authors' code; the paper's
    ``- f(x_b)`` shifts every weight equally and is dropped there too); map ``ReLU(sum_k w_k A_k)``.
    All ``B x K`` masked inputs run through the model ``max_batch`` rows at a time.
    """

    citation = (
        "Wang, Wang, Du, Yang, Zhang, Ding, Mardziel & Hu. Score-CAM: Score-Weighted Visual Explanations for "
        "Convolutional Neural Networks. CVPR Workshops 2020. arXiv:1910.01279"
    )
    defaults = {"layer": None, "upsample": "bilinear", "score": "softmax", "baseline": "mean", "max_batch": 64}

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        check_choice("method", self.name, "score", self.params["score"], ("softmax", "logit"))
        check_choice("method", self.name, "baseline", self.params["baseline"], ("mean", "black"))
        check_number(self, "max_batch", 1, integer=True)

    def channel_scores(
        self, model: nn.Module, inputs: torch.Tensor, acts: torch.Tensor, target: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(logits of the masked inputs [B,K,classes], non-constant channel flags [B,K])``.

        The ``B x K`` masks and masked inputs are built ``max_batch`` rows at a time, just before their
        forward pass, so memory stays bounded and each chunk is still in cache when the model reads it.
        """
        b, k = acts.shape[:2]
        size = tuple(inputs.shape[-2:])
        x, flat = inputs.detach(), acts.flatten(0, 1)
        logits, varies = [], []
        with torch.no_grad():
            for start in range(0, b * k, self.params["max_batch"]):
                rows = torch.arange(start, min(start + self.params["max_batch"], b * k), device=x.device)
                up = upsample(flat[rows], size, self.params["upsample"])
                masks = min_max(up, axis=(-2, -1))
                logits.append(model(masked_inputs(model, x[rows // k], masks[:, None], self.params["baseline"])[:, 0]))
                varies.append(up.flatten(1).amax(dim=1) > up.flatten(1).amin(dim=1))
        return torch.cat(logits).view(b, k, -1), torch.cat(varies).view(b, k)

    def layer_map(self, model, layer, inputs, target):
        acts, _ = layer_activations(model, layer, inputs)
        logits, varies = self.channel_scores(model, inputs, acts, target)
        if self.params["score"] == "softmax":
            logits = logits.softmax(dim=2)
        index = target.view(-1, 1, 1).expand(-1, logits.shape[1], 1)
        weights = logits.gather(2, index).squeeze(2) * varies
        return weighted_sum(weights, acts).clamp(min=0)


@register_method("ablationcam")
class AblationCAM(ActivationMapMethod):
    """Ablation-CAM (Desai & Ramaswamy 2020): ``w_k = (y_c - y_c^k) / y_c``, ``y_c^k`` with channel k zeroed.

    Map ``ReLU(sum_k w_k A_k)``. All ``B x K`` ablated forwards run ``max_batch`` rows at a time.
    """

    citation = (
        "Desai & Ramaswamy. Ablation-CAM: Visual Explanations for Deep Convolutional Network via "
        "Gradient-free Localization. WACV 2020"
    )
    defaults = {"layer": None, "upsample": "bilinear", "max_batch": 64}

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        check_number(self, "max_batch", 1, integer=True)

    def layer_map(self, model, layer, inputs, target):
        acts, logits = layer_activations(model, layer, inputs)
        b, k = acts.shape[:2]
        # row r of the expanded batch is item r // K with channel r % K zeroed
        keep = 1 - torch.eye(k, dtype=acts.dtype, device=acts.device).repeat(b, 1)[:, :, None, None]
        rows = inputs.detach().repeat_interleave(k, dim=0)
        rows_target = target.repeat_interleave(k)
        step = self.params["max_batch"]
        scores = []
        for start in range(0, rows.shape[0], step):
            chunk_keep = keep[start : start + step]
            with capture(layer, edit=lambda out, m=chunk_keep: out * m, tokens=token_layout(model)):
                out = chunked_logits(model, rows[start : start + step], step)
            scores.append(out.gather(1, rows_target[start : start + step].view(-1, 1)).squeeze(1))
        ablated = torch.cat(scores).view(b, k)
        original = logits.gather(1, target.view(-1, 1))
        weights = (original - ablated) / original
        return weighted_sum(weights, acts).clamp(min=0)


def last_linear(model: nn.Module) -> nn.Linear:
    """The last :class:`~torch.nn.Linear` module registered in ``model`` (the classifier of a GAP + FC net)."""
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    if not linears:
        raise ParamError("cam needs a model with a final nn.Linear classifier")
    return linears[-1]


@register_method("cam")
class CAM(ActivationMapMethod):
    """Class activation mapping (Zhou et al. 2016): ``sum_k w_{c,k} A_k`` with the final linear layer's weights.

    For GAP + one linear layer; ``layer`` must be the one feeding the pooling. Signed (no ReLU), as in
    the paper; for such models ReLU(CAM) equals Grad-CAM times ``h*w``.
    """

    citation = (
        "Zhou, Khosla, Lapedriza, Oliva & Torralba. Learning Deep Features for Discriminative Localization. "
        "CVPR 2016. arXiv:1512.04150"
    )
    needs_gap_fc = True

    def layer_map(self, model, layer, inputs, target):
        acts, _ = layer_activations(model, layer, inputs)
        fc = last_linear(model)
        if fc.in_features != acts.shape[1]:
            raise ParamError(
                f"cam: layer {self.params['layer']!r} has {acts.shape[1]} channels, the final linear layer "
                f"expects {fc.in_features}"
            )
        weights = fc.weight.detach()[target].to(acts.dtype)
        return weighted_sum(weights, acts)
