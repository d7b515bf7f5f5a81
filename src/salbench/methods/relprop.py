"""A relevance-propagation engine for RAP and RSP: one recorded forward pass, then rules dispatched on module type.

The network needs no ``relprop`` methods of its own. :func:`recording` stores, with forward hooks that it always
removes, the input (and the output) of every module of one forward pass; :class:`Propagation` then walks the
module tree backwards, from a start module down to the input, and applies a rule per module type:

* chains (``nn.Sequential`` and any other container, children in the order they were called; a tensor reshape
  between two children, such as ``torch.flatten`` in a forward, is undone on the relevance),
* ``Conv2d``/``Linear``: the method's own rule (:func:`rsp_conv` for RSP, :func:`rap_weighted` for RAP); the
  first weighted layer of the network uses the z^B rule (:func:`zbox`) with the bounds of :func:`input_bounds`,
* ``BatchNorm2d`` (:func:`batch_norm_rule`), max/average pooling (:func:`pool_rule`), ``Flatten`` (reshape),
  ReLU/Dropout/Identity (relevance passes unchanged),
* residual blocks (torchvision's and timm's ``BasicBlock``/``Bottleneck``): the relevance of the block output
  splits between the residual branch and the shortcut in proportion to the two summands (:func:`sum_rule`);
  each part is propagated through its own path and the two input relevances are added.

Convolutions and linear layers are handled in one form, as a matrix product of the weights ``[O, D]`` with
patches ``[B, D, L]`` of the input (``unfold`` for convolutions), so a rule is written once and every item of a
batch keeps its own, per-item quantities (the authors run one image at a time). Divisions are safe: ``a / b``
is 0 where ``b == 0``, as the authors' ``safe_divide``.

Reference code followed, rule by rule (each function names its counterpart): ``modules/layers.py`` of
github.com/wjNam/Relative_Attributing_Propagation (RAP: ``Conv2d``/``Linear``/``BatchNorm2d``/``RelPropSimple``
``.RAP_relprop``) and of github.com/wjNam/Relative_Sectional_Propagation (RSP: the same classes'
``.RSP_relprop``). Papers: Nam, Gur, Choi, Wolf & Lee, "Relative Attributing Propagation: Interpreting the
Comparative Contributions of Individual Units in Deep Neural Networks", AAAI 2020 (arXiv:1904.00605); Nam, Choi
& Lee, "Interpreting Deep Neural Networks with Relative Sectional Propagation by Analyzing Comparative Gradients
and Hostile Activations", AAAI 2021 (arXiv:2012.03434).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Callable, Iterator

import torch
import torch.nn.functional as F
from torch import nn

from .lazy import TIMM_RESNET, TV_RESNET, loaded_classes


class UnsupportedModuleError(TypeError):
    """The network holds a module (or layout) the relevance rules do not cover; the message names it."""

#: the authors' stabiliser, added to pooled inputs (RSP) and to rectified residual summands
EPS = 1e-9

#: modules through which relevance passes unchanged (ReLU passes it to its input, as in LRP)
PASS_THROUGH = (nn.ReLU, nn.Dropout, nn.Identity)
POOLS = (nn.MaxPool2d, nn.AvgPool2d, nn.AdaptiveAvgPool2d)
WEIGHTED = (nn.Conv2d, nn.Linear)

#: ``rule(layer, x, relevance_at_output) -> relevance_at_input`` for a conv or linear layer
WeightedRule = Callable[[nn.Module, torch.Tensor, torch.Tensor], torch.Tensor]


def safe_divide(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``a / b`` where ``b != 0``, 0 elsewhere."""
    nonzero = b != 0
    return torch.where(nonzero, a / torch.where(nonzero, b, torch.ones_like(b)), torch.zeros_like(a))


def per_item_sum(values: torch.Tensor) -> torch.Tensor:
    """``[B, ...]`` -> ``[B, 1, ...]``-broadcastable per-item sums."""
    return values.flatten(1).sum(1).view(-1, *([1] * (values.dim() - 1)))


def shift_nonzero(values: torch.Tensor, amount: torch.Tensor) -> torch.Tensor:
    """The authors' ``shift_rel``: subtract ``amount`` (``[B, 1, ...]``) from each item, spread evenly over its
    nonzero entries; entries that are exactly 0 (inactive units) stay 0."""
    nonzero = (values != 0).to(values.dtype)
    return values - nonzero * safe_divide(amount, per_item_sum(nonzero))


def uniform_shift(contributions: torch.Tensor, relevance: torch.Tensor) -> torch.Tensor:
    """RAP's uniform shifting: shift the nonzero entries so that each item's sum is the sum of ``relevance``
    (conservation; ``pos_prop`` of ``Linear``/``Conv2d.RAP_relprop`` shifts by ``sum(C) - sum(R)``)."""
    return shift_nonzero(contributions, per_item_sum(contributions) - per_item_sum(relevance))


# --- conv and linear layers as weights x patches --------------------------------------------------------------


def _check_supported(layer: nn.Module) -> None:
    if isinstance(layer, nn.Conv2d) and (
        layer.groups != 1 or layer.padding_mode != "zeros" or isinstance(layer.padding, str)
    ):
        raise UnsupportedModuleError(
            f"relevance rules support ungrouped, zero-padded convolutions with explicit padding, not {layer}"
        )


def patches(layer: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The layer's input as ``[B, D, L]`` columns: ``layer(x)`` without bias is ``weights(layer) @ patches``."""
    _check_supported(layer)
    if isinstance(layer, nn.Linear):
        return x.flatten(1).unsqueeze(-1)
    return F.unfold(x, layer.kernel_size, dilation=layer.dilation, padding=layer.padding, stride=layer.stride)


def unpatch(layer: nn.Module, columns: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """The adjoint of :func:`patches`: ``[B, D, L]`` columns summed back onto an input shaped like ``x``."""
    if isinstance(layer, nn.Linear):
        return columns.squeeze(-1).reshape(x.shape)
    return F.fold(columns, tuple(x.shape[-2:]), layer.kernel_size, dilation=layer.dilation,
                  padding=layer.padding, stride=layer.stride)


def weights(layer: nn.Module) -> torch.Tensor:
    """The layer's weight as an ``[O, D]`` matrix."""
    return layer.weight.detach().flatten(1)


def apply(matrix: torch.Tensor, cols: torch.Tensor) -> torch.Tensor:
    """``matrix [O, D] @ cols [B, D, L] -> [B, O, L]`` as one folded matrix product."""
    return (cols.transpose(1, 2) @ matrix.T).transpose(1, 2)


def apply_transposed(matrix: torch.Tensor, cols: torch.Tensor) -> torch.Tensor:
    """``matrix.T [D, O] @ cols [B, O, L] -> [B, D, L]`` as one folded matrix product."""
    return (cols.transpose(1, 2) @ matrix).transpose(1, 2)


def columns(relevance: torch.Tensor) -> torch.Tensor:
    """Output relevance ``[B, O, ...]`` as ``[B, O, L]``."""
    return relevance.flatten(2) if relevance.dim() > 2 else relevance.unsqueeze(-1)


# --- rules ----------------------------------------------------------------------------------------------------


def input_bounds(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """RAP's and RSP's z^B bounds: ONE ``L`` and ONE ``H`` per item, the minimum and maximum of the whole input
    tensor of the first layer over channels and pixels (``final_backward`` in both authors' ``Conv2d``), as
    ``[B, 1, ...]`` tensors that broadcast against ``x``.

    That input is the *normalised* image: the authors normalise in the data loader, before the network, and
    their first convolution sees ``(image - mean) / std``; our models keep the normalisation inside the model
    (``NormalizedClassifier``), and RAP/RSP run on the inner network, whose first layer sees the same tensor.
    So ``L``/``H`` are its extremes over the image actually given, not the images of pixel values 0 and 1.
    """
    shape = (-1, *([1] * (x.dim() - 1)))
    return x.flatten(1).amin(1).view(shape), x.flatten(1).amax(1).view(shape)


def zbox(layer: nn.Module, x: torch.Tensor, low: torch.Tensor, high: torch.Tensor,
         relevance: torch.Tensor) -> torch.Tensor:
    """The z^B rule of the first layer (Montavon et al. 2017), the input rule of RAP and RSP (their
    ``Conv2d.*_relprop.final_backward``).

    ``R_i = sum_j (x_i w_ij - l_i w+_ij - h_i w-_ij) / z_j R_j`` with ``z_j`` the sum of the numerators over
    ``i`` and ``l <= x <= h`` the input bounds, broadcastable against ``x`` (bias left out, zero padding for all
    three terms as in their code): conserving wherever ``z_j != 0``.
    """
    w = weights(layer)
    w_pos, w_neg = w.clamp(min=0), w.clamp(max=0)
    low, high = low.expand_as(x), high.expand_as(x)
    z = apply(w, patches(layer, x)) - apply(w_pos, patches(layer, low)) - apply(w_neg, patches(layer, high))
    s = safe_divide(columns(relevance), z)
    back = lambda matrix: unpatch(layer, apply_transposed(matrix, s), x)  # noqa: E731
    return x * back(w) - low * back(w_pos) - high * back(w_neg)


def comparative_shares(conv: nn.Conv2d, x: torch.Tensor,
                       relevance: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """RSP's propagation of the target (``R+``) and hostile (``R-``, as magnitudes) relevance through ``conv``.

    For each part ``R*`` (>= 0) the *comparative gradient* is the kernel-shaped gradient
    ``G* = d/dW sum(R* . conv(x+, W))`` (per item: the input patches weighted by the relevance they
    produced), and ``R*`` is redistributed by the z-rule with ``G*`` as the weights:
    ``C* = x+ . d/dx+ [conv(x+, G*)] . R* / conv(x+, G*)``. ``G* >= 0``, so each part is conserving wherever
    an output with relevance has an active input. Returns ``(C+, C-)``, both >= 0, shaped like ``x``.
    """
    x_pos = x.clamp(min=0)
    cols = patches(conv, x_pos)

    def share(part: torch.Tensor) -> torch.Tensor:
        part = columns(part)
        kernel = part @ cols.transpose(1, 2)  # [B, O, D] comparative gradient
        s = safe_divide(part, kernel @ cols)
        return x_pos * unpatch(conv, kernel.transpose(1, 2) @ s, x)

    return share(relevance.clamp(min=0)), share((-relevance).clamp(min=0))


def rsp_conv(conv: nn.Conv2d, x: torch.Tensor, relevance: torch.Tensor) -> torch.Tensor:
    """RSP's convolution rule (``Conv2d.RSP_relprop`` of the RSP code): ``C+ - C-`` for kernels of height 1
    (the authors test the kernel height); otherwise ``2 (C+ - C-)`` with ``sum(R)`` subtracted evenly from its
    nonzero entries (their ``pos_prop``/``shift_rel``), see :func:`comparative_shares`.

    The shift subtracts ``sum(R)``, not the excess over ``sum(R)``: where both parts conserve (every output with
    relevance has an active input) the two are the same and the layer conserves; where a part loses relevance,
    the authors' rule does not restore it, and neither does this one.
    """
    if not isinstance(conv, nn.Conv2d):
        raise UnsupportedModuleError(f"RSP propagates the convolutional feature extractor only, not {conv}")
    target, hostile = comparative_shares(conv, x, relevance)
    if conv.kernel_size[0] == 1:
        return target - hostile
    return shift_nonzero(2 * (target - hostile), per_item_sum(relevance))


def rap_shares(relevance: torch.Tensor, activation: torch.Tensor, inhibition: torch.Tensor,
               negative_to_inhibitors: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """RAP's per-output factors ``(s_a, s_i)`` of one pass: an input gets ``|x| (w+ . s_a + |w-| . s_i)``.

    ``activation`` ``A_j`` and ``inhibition`` ``I_j`` (both >= 0) are the output's totals over the pass's two
    groups (``Za1``/``Za2`` of the authors' ``pos_prop``). The second group always gets the inverted share
    ``R_j I_j / (A_j + I_j)`` (the sign of ``R_j``). The rest of ``R_j`` goes, in ``Linear.RAP_relprop``, to the
    first group whatever its sign; in ``Conv2d.RAP_relprop`` (``negative_to_inhibitors``) only a positive ``R_j``
    goes to the first group, and a negative one to the second (their ``S1n`` divides by ``Za2``), which then
    receives ``R_j (1 + I_j / (A_j + I_j))`` in all.
    """
    inhibited = safe_divide(inhibition, activation + inhibition)
    if not negative_to_inhibitors:
        return safe_divide(relevance, activation), safe_divide(relevance * inhibited, inhibition)
    positive, negative = relevance.clamp(min=0), relevance.clamp(max=0)
    return (safe_divide(positive, activation),
            safe_divide(positive * inhibited + negative * (1 + inhibited), inhibition))


def rap_weighted(layer: nn.Module, x: torch.Tensor, relevance: torch.Tensor) -> torch.Tensor:
    """RAP's rule for a hidden conv or linear layer (``Conv2d.RAP_relprop``/``Linear.RAP_relprop`` of the RAP
    code): activators, inverted inhibitors, uniform shift.

    The authors make one pass per sign of the input, ``x+`` and then ``x-``, each shifted on its own to conserve
    ``R`` (:func:`uniform_shift`), and add them. In a pass over ``|x|`` the first group is the inputs' products
    with the positive weights and the second with the negative weights (magnitudes); for ``x+`` these are the
    activators and inhibitors, for ``x-`` the roles swap but the code keeps the weight-sign grouping. The split of
    ``R_j`` between the groups is :func:`rap_shares`: the linear variant for ``nn.Linear``, the conv variant
    (negative relevance to the inhibitors only) for ``nn.Conv2d``. Hidden inputs of a ReLU network are
    non-negative, so the ``x-`` pass is empty (and skipped) there; where it is not, the layer's output sums to
    ``2 R`` as in the authors' code.
    """
    w = weights(layer)
    positive_w, negative_w = w.clamp(min=0), (-w).clamp(min=0)
    r = columns(relevance)
    negative_to_inhibitors = isinstance(layer, nn.Conv2d)
    magnitudes = [x.clamp(min=0)]
    if (x < 0).any():
        magnitudes.append((-x).clamp(min=0))
    back = lambda matrix, s: unpatch(layer, apply_transposed(matrix, s), x)  # noqa: E731
    total = torch.zeros_like(x)
    for part in magnitudes:
        cols = patches(layer, part)
        s_first, s_second = rap_shares(r, apply(positive_w, cols), apply(negative_w, cols), negative_to_inhibitors)
        total = total + uniform_shift(part * (back(positive_w, s_first) + back(negative_w, s_second)), relevance)
    return total


def absolute_influence(linear: nn.Module, x: torch.Tensor, selection: torch.Tensor) -> torch.Tensor:
    """RAP's first step at the output layer: absolute influence normalisation.

    ``selection`` weighs the outputs (RAP's one-hot ``T``). Each input's contribution ``c_i = x_i sum_j w_ji T_j``
    is taken in absolute value and normalised so the input relevances sum to the selected output ``sum_j T_j y_j``
    (bias included). The authors' code (``Linear.RAP_relprop``: ``first_prop`` then ``redistribute``) first
    spreads the bias over the positive and negative contributions in proportion to their totals, which, for the
    non-negative inputs of a ReLU network's output layer, scales every ``c_i`` by the same factor and so leaves
    ``|c_i| / sum |c|`` unchanged. (Their bias spreading skips the contributions of negative inputs; a head fed
    negative inputs would differ from theirs.)
    """
    if not isinstance(linear, nn.Linear):
        raise UnsupportedModuleError(f"RAP needs a network that ends in a linear layer, not {linear}")
    contributions = x * (selection @ linear.weight.detach()).reshape(x.shape)
    output = per_item_sum(selection * F.linear(x, linear.weight.detach(), _detached(linear.bias)))
    magnitude = contributions.abs()
    return safe_divide(magnitude, per_item_sum(magnitude)) * output


def _detached(tensor: torch.Tensor | None) -> torch.Tensor | None:
    return None if tensor is None else tensor.detach()


def batch_norm_rule(bn: nn.BatchNorm2d, x: torch.Tensor, relevance: torch.Tensor) -> torch.Tensor:
    """RAP/RSP's batch-norm rule (``BatchNorm2d.RAP_relprop``/``.RSP_relprop``): relevance passes to the inputs
    with a nonzero scaled value ``x gamma / sigma``.

    The authors' rule spreads the bias over the channel's nonzero-relevance positions, subtracts it, passes
    both parts through the ratio rule ``x a . R / (x a)`` and adds them back; the bias parts cancel, leaving
    the relevance itself wherever ``x a != 0``.
    """
    active = x != 0
    if bn.weight is not None:
        active = active & (bn.weight.detach() != 0).view(1, -1, *([1] * (x.dim() - 2)))
    return relevance * active


def pool_rule(pool: nn.Module, x: torch.Tensor, relevance: torch.Tensor, eps: float = EPS) -> torch.Tensor:
    """The z-rule through a pooling layer (max pooling: to the maximum; average: in proportion to the inputs) on
    ``x + eps`` (``RelPropSimple``): RSP's code adds 1e-9 (an all-zero window keeps its relevance), RAP's adds
    nothing (a zero input gets exactly 0, and an all-zero window loses its relevance)."""
    with torch.enable_grad():
        leaf = (x.detach() + eps).requires_grad_()
        z = pool(leaf)
        (grad,) = torch.autograd.grad(z, leaf, safe_divide(relevance, z.detach()))
    return leaf.detach() * grad


def sum_rule(a: torch.Tensor, b: torch.Tensor, relevance: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Residual addition ``a + b``: relevance split in proportion to the rectified summands ``max(., 0) + 1e-9``
    (linear in the relevance, so ``R+`` and ``R-`` split alike), as in the authors' RSP code.

    RAP's older code splits by the raw summands, which explodes where they nearly cancel: a barely active unit
    still receives the uniform shift, and ``a / (a + b)`` multiplies it by a huge factor of either sign (in
    float32 a batch then no longer matches its items). Both methods here use the rectified split (RSP's
    ``RelPropSimple.RSP_relprop`` on ``Add``; RAP's ``RelPropSimple.RAP_relprop`` splits by the raw summands).
    """
    a, b = a.clamp(min=0) + EPS, b.clamp(min=0) + EPS
    s = safe_divide(relevance, a + b)
    return a * s, b * s


# --- recording ------------------------------------------------------------------------------------------------


@dataclass
class Record:
    """A module's last call in the recorded forward: order of first completion, call count, input, output."""

    index: int
    calls: int
    input: torch.Tensor | None
    output: torch.Tensor


def residual_blocks() -> tuple[type, ...]:
    """The residual blocks with a rule (torchvision's and timm's; their forward: branch, ``+= shortcut``,
    activation), of the libraries loaded: a network holds no others (:func:`~.lazy.loaded_classes`)."""
    names = ("BasicBlock", "Bottleneck")
    return loaded_classes(TV_RESNET, *names) + loaded_classes(TIMM_RESNET, *names)


def residual_parts(block: nn.Module) -> tuple[list[nn.Module], nn.Module | None]:
    """``(branch modules in forward order, downsample or None)`` of a supported residual block."""
    if isinstance(block, loaded_classes(TV_RESNET, "BasicBlock", "Bottleneck")):
        names = ["conv1", "bn1", "relu", "conv2", "bn2"]
        if isinstance(block, loaded_classes(TV_RESNET, "Bottleneck")):
            names += ["relu", "conv3", "bn3"]
    else:
        if block.se is not None or not isinstance(block.drop_path, (type(None), nn.Identity)):
            raise UnsupportedModuleError("relevance rules support timm ResNet blocks without attention or drop path")
        if isinstance(block, loaded_classes(TIMM_RESNET, "BasicBlock")):
            names = ["conv1", "bn1", "drop_block", "act1", "aa", "conv2", "bn2"]
        else:
            names = ["conv1", "bn1", "act1", "conv2", "bn2", "drop_block", "act2", "aa", "conv3", "bn3"]
    return [getattr(block, name) for name in names], block.downsample


def _summand_modules(net: nn.Module) -> set[nn.Module]:
    """Modules whose outputs are summands of a residual addition (saved before the in-place ``+=``)."""
    kept = set()
    blocks = residual_blocks()
    for block in net.modules():
        if isinstance(block, blocks):
            branch, downsample = residual_parts(block)
            kept.add(branch[-1])
            if downsample is not None:
                kept.add(downsample)
    return kept


@contextlib.contextmanager
def recording(net: nn.Module) -> Iterator[dict[nn.Module, Record]]:
    """Within the block, every forward of ``net`` fills the yielded ``{module: Record}``; hooks removed in a
    ``finally``. Inputs are detached; outputs stay attached (gradients at a layer), and residual summands are
    cloned before the block's in-place addition overwrites them."""
    records: dict[nn.Module, Record] = {}
    summands = _summand_modules(net)

    def hook(module: nn.Module, args: tuple, output: torch.Tensor) -> None:
        x = args[0].detach() if args and isinstance(args[0], torch.Tensor) else None
        kept = output.clone() if module in summands else output
        previous = records.get(module)
        index, calls = (previous.index, previous.calls + 1) if previous else (len(records), 1)
        records[module] = Record(index, calls, x, kept)

    handles = [module.register_forward_hook(hook) for module in net.modules()]
    try:
        yield records
    finally:
        for handle in handles:
            handle.remove()


def output_layer(records: dict[nn.Module, Record], logits: torch.Tensor) -> nn.Module:
    """The weighted layer that produced the network output ``logits``."""
    layers = [m for m in records if isinstance(m, WEIGHTED)]
    last = max(layers, key=lambda m: records[m].index) if layers else None
    if last is None or records[last].output is not logits:
        raise UnsupportedModuleError("RAP needs a network whose output is that of its last conv/linear layer")
    return last


# --- the walk -------------------------------------------------------------------------------------------------


class Propagation:
    """Backward walk over a recorded forward of ``net``, from ``start`` (relevance ``start_relevance`` on its
    output) down to the network input.

    ``weighted`` is the method's rule for conv/linear layers; the first weighted layer of the forward uses
    :func:`zbox` with the bounds of :func:`input_bounds` (the extremes of that layer's input per item);
    ``pool_eps`` is the method's stabiliser for :func:`pool_rule`; ``overrides`` maps modules to their own
    ``rule(x, relevance)``.
    """

    def __init__(
        self,
        net: nn.Module,
        records: dict[nn.Module, Record],
        weighted: WeightedRule,
        pool_eps: float = EPS,
        overrides: dict[nn.Module, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] | None = None,
    ) -> None:
        self.net, self.records, self.weighted, self.pool_eps = net, records, weighted, pool_eps
        self.overrides = overrides or {}
        self.blocks = residual_blocks()
        layers = [m for m in records if isinstance(m, WEIGHTED)]
        self.first = min(layers, key=lambda m: records[m].index) if layers else None
        self.start: nn.Module | None = None
        self.start_relevance: torch.Tensor | None = None
        self.above_start: set[nn.Module] = set()

    def run(self, start: nn.Module, relevance: torch.Tensor) -> torch.Tensor:
        """Relevance at the network input, given ``relevance`` on the output of ``start``."""
        if start not in self.records:
            raise ValueError(f"the start layer {type(start).__name__} was not called in the forward pass")
        self.start, self.start_relevance = start, relevance
        self.above_start = {m for m in self.net.modules() if any(sub is start for sub in m.modules())}
        result = self.propagate(self.net, None)
        return result.reshape(self.records[self.net].input.shape)

    def input_of(self, module: nn.Module) -> torch.Tensor:
        record = self.records[module]
        if record.calls != 1 or record.input is None:
            raise UnsupportedModuleError(
                f"{type(module).__name__} is called {record.calls} times per forward or with no tensor input; "
                "its rule needs one input"
            )
        return record.input

    def propagate(self, module: nn.Module, relevance: torch.Tensor | None) -> torch.Tensor | None:
        """Relevance at ``module``'s input from ``relevance`` at its output (None: above the start, skipped)."""
        if module is self.start:
            relevance = self.start_relevance
        elif relevance is None:
            if module not in self.above_start:
                return None
            if isinstance(module, self.blocks):
                raise UnsupportedModuleError("relevance propagation cannot start inside a residual block")
            return self.chain(module, None)
        if module in self.overrides:
            return self.overrides[module](self.input_of(module), relevance)
        if isinstance(module, self.blocks):
            return self.block(module, relevance)
        if isinstance(module, WEIGHTED):
            x = self.input_of(module)
            if module is self.first:
                return zbox(module, x, *input_bounds(x), relevance)
            return self.weighted(module, x, relevance)
        if isinstance(module, nn.BatchNorm2d):
            return batch_norm_rule(module, self.input_of(module), relevance)
        if isinstance(module, POOLS):
            return pool_rule(module, self.input_of(module), relevance, self.pool_eps)
        if isinstance(module, nn.Flatten):
            return relevance.reshape(self.input_of(module).shape)
        if isinstance(module, PASS_THROUGH):
            return relevance
        if any(True for _ in module.children()):
            return self.chain(module, relevance)
        raise UnsupportedModuleError(f"no relevance rule for {type(module).__name__}")

    def chain(self, module: nn.Module, relevance: torch.Tensor | None) -> torch.Tensor | None:
        """A container: its called children in reverse call order, undoing reshapes between them."""
        children = sorted((c for c in module.children() if c in self.records), key=lambda c: self.records[c].index)
        for later, child in zip([None, *children[::-1]], children[::-1]):
            if relevance is not None and later is not None:
                shape = self.records[child].output.shape
                if relevance.numel() != self.records[child].output.numel():
                    raise UnsupportedModuleError(
                        f"{type(module).__name__} is not a chain: {type(later).__name__} does not take the "
                        f"output of {type(child).__name__}"
                    )
                relevance = relevance.reshape(shape)
            relevance = self.propagate(child, relevance)
        return relevance

    def block(self, block: nn.Module, relevance: torch.Tensor) -> torch.Tensor:
        """A residual block: activation (pass), sum split, branch and shortcut propagated, input relevances added."""
        branch, downsample = residual_parts(block)
        shortcut = self.records[downsample].output if downsample is not None else self.input_of(block)
        r_branch, r_shortcut = sum_rule(self.records[branch[-1]].output.detach(), shortcut.detach(), relevance)
        for module in reversed(branch):
            r_branch = self.propagate(module, r_branch)
        if downsample is not None:
            r_shortcut = self.propagate(downsample, r_shortcut)
        return r_branch + r_shortcut
