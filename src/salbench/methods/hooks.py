"""Temporary model surgery for propagation methods; every change is undone in a ``finally``.

Propagation rules (guided backprop, DeepLIFT, LRP, excitation backprop) attach to activation modules and
assume each module is applied once per forward pass, out of place. A torchvision ResNet block applies one
in-place ``relu`` two or three times, which makes captum's DeepLIFT refuse the model and lets per-module
state of one use overwrite another's; a torchvision DenseNet applies its last ReLU as a function, which
no rule reaches. :func:`separate_activations` gives every use its own module.
"""

from __future__ import annotations

import contextlib
import copy
import weakref
from typing import TYPE_CHECKING, Iterator

import torch
from torch import nn

from .lazy import TV_DENSENET, loaded_classes

if TYPE_CHECKING:
    from zennit.canonizers import Canonizer
    from zennit.core import Composite

#: parameter-free non-linearities whose backward pass a propagation rule may replace
NONLINEAR = (
    nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.ELU, nn.GELU, nn.SiLU, nn.Sigmoid, nn.Tanh, nn.Softplus,
    nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d,
)

#: per model: (module identities when counted, calls per forward of each reused non-linearity)
_CALL_COUNTS: "weakref.WeakKeyDictionary[nn.Module, tuple[tuple[int, ...], dict[int, int]]]" = (
    weakref.WeakKeyDictionary()
)


class PerCall(nn.Module):
    """Stands in for a module applied ``len(uses)`` times per forward: call ``k`` goes to its own copy ``k``."""

    def __init__(self, module: nn.Module, calls: int) -> None:
        super().__init__()
        self.uses = nn.ModuleList(copy.deepcopy(module) for _ in range(calls))
        self.next_use = 0

    def forward(self, *args: torch.Tensor) -> torch.Tensor:
        use = self.uses[self.next_use]
        self.next_use = (self.next_use + 1) % len(self.uses)
        return use(*args)


#: per reused non-linearity: its stand-in, reused by later calls while it still matches (deep copies cost ~3 ms
#: per call on a ResNet50)
_STAND_INS: "weakref.WeakKeyDictionary[nn.Module, PerCall]" = weakref.WeakKeyDictionary()
_HOOK_DICTS = ("_forward_hooks", "_forward_pre_hooks", "_backward_hooks", "_backward_pre_hooks")


def _settings(module: nn.Module) -> dict[str, object]:
    """A non-linearity's public attributes (``inplace``, ``negative_slope``, ``training``, ...): what copies copy."""
    return {key: value for key, value in vars(module).items() if not key.startswith("_")}


def _stand_in(module: nn.Module, calls: int) -> PerCall:
    """A :class:`PerCall` for ``module``: the cached one while its copies still match ``module`` and carry no hook
    (the parameter-free non-linearities of :data:`NONLINEAR` are their settings), else a new one."""
    cached = _STAND_INS.get(module)
    if cached is not None and len(cached.uses) == calls:
        settings = _settings(module)
        if not any(getattr(m, attr) for m in cached.modules() for attr in _HOOK_DICTS) and all(
            _settings(use) == settings and not list(use.parameters(recurse=True)) for use in cached.uses
        ):
            cached.next_use = 0
            return cached
    _STAND_INS[module] = stand_in = PerCall(module, calls)
    return stand_in


def _count_calls(model: nn.Module, modules: list[nn.Module], probe: torch.Tensor) -> dict[int, int]:
    """Calls per forward of each non-linearity called more than once, from one no-grad eval forward of ``probe``.

    Cached per model while its modules (``modules``, its ``modules()`` in order) stay the same objects.
    Training flags are restored afterwards, so batch-norm statistics and the dropout random stream are never
    touched.
    """
    signature = tuple(map(id, modules))
    cached = _CALL_COUNTS.get(model)
    if cached is not None and cached[0] == signature:
        return cached[1]
    calls: dict[int, int] = {}
    modes = {m: m.training for m in modules}

    def count(module: nn.Module, args: tuple) -> None:
        calls[id(module)] = calls.get(id(module), 0) + 1

    handles = [m.register_forward_pre_hook(count) for m in modules if isinstance(m, NONLINEAR)]
    try:
        model.eval()
        with torch.no_grad():
            model(probe)
    finally:
        for handle in handles:
            handle.remove()
        for module, mode in modes.items():
            module.training = mode
    reused = {key: n for key, n in calls.items() if n > 1}
    _CALL_COUNTS[model] = (signature, reused)
    return reused


@contextlib.contextmanager
def separate_activations(model: nn.Module, probe: torch.Tensor, split_reused: bool = True) -> Iterator[nn.Module]:
    """Within the block, every non-linearity is out of place and (``split_reused``) every use of one has its own
    module; methods whose hooks act per call, not per module, skip the split and its per-call dispatch.

    ``probe`` is a one-item input used (once per model) to count how often each non-linearity is called.
    A module called ``k`` times is replaced, in every parent holding it, by a :class:`PerCall` with ``k``
    copies, dispatched in call order (reset at the start of each forward by a root pre-hook). A torchvision
    DenseNet's functional last ReLU and pooling become modules
    (:class:`~salbench.methods.canonizers.DenseNetCanonizer`; zennit loads only for such a model).
    Everything (modules, ``inplace`` flags, canonizers, the pre-hook) is restored in a ``finally``, also when
    the method raises. Assumes the model calls its modules in the same order on every forward (true of
    feed-forward CNNs).
    """
    modules = list(model.modules())  # one walk of the module tree: walks are a share of a small model's call
    inplace = {m: m.inplace for m in modules if isinstance(m, NONLINEAR) and hasattr(m, "inplace")}
    applied: list[Canonizer] = []
    swapped: list[tuple[nn.Module, str, nn.Module]] = []
    per_call: list[PerCall] = []
    handle = None
    try:
        reused = _count_calls(model, modules, probe[:1]) if split_reused else {}
        densenet = loaded_classes(TV_DENSENET, "DenseNet")
        if any(isinstance(m, densenet) for m in modules):
            from .canonizers import DenseNetCanonizer

            applied += DenseNetCanonizer().apply(model)
            modules = list(model.modules())
        for module in inplace:
            module.inplace = False
        for parent in modules:
            for name, child in list(parent.named_children()):
                if id(child) in reused:
                    replacement = _stand_in(child, reused[id(child)])
                    setattr(parent, name, replacement)
                    swapped.append((parent, name, child))
                    per_call.append(replacement)

        def restart(module: nn.Module, args: tuple) -> None:
            for stand_in in per_call:
                stand_in.next_use = 0

        if per_call:
            handle = model.register_forward_pre_hook(restart)
        yield model
    finally:
        if handle is not None:
            handle.remove()
        for parent, name, child in reversed(swapped):
            setattr(parent, name, child)
        for module, flag in inplace.items():
            module.inplace = flag
        for instance in reversed(applied):
            instance.remove()


@contextlib.contextmanager
def capture_output(layer: nn.Module) -> Iterator[list[torch.Tensor]]:
    """Yield a list that receives ``layer``'s output on each forward; the hook is removed in a ``finally``."""
    outputs: list[torch.Tensor] = []

    def keep(module: nn.Module, args: tuple, output: torch.Tensor) -> None:
        outputs.append(output)

    handle = layer.register_forward_hook(keep)
    try:
        yield outputs
    finally:
        handle.remove()


@contextlib.contextmanager
def registered(composite: Composite, model: nn.Module) -> Iterator[nn.Module]:
    """Apply a zennit composite's canonizers and hooks to ``model``; remove them all in a ``finally``.

    Unlike ``composite.context``, this also undoes a registration that fails half-way.
    """
    try:
        composite.register(model)
        yield model
    finally:
        composite.remove()
