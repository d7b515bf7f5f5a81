"""The authors' ``lxt`` 2.1 on a torchvision ViT, for AttnLRP's parity test and benchmark; every patch undone.

``lxt`` patches ``torch.nn`` classes for the whole process (``transformer-methods.md`` §4), so
:func:`lxt_patched` snapshots what it patches (``forward`` and ``original_forward`` of ``nn.GELU``,
``nn.LayerNorm`` and ``nn.MultiheadAttention``) and restores it in a ``finally``. Modes:

* ``"cp"``: ``lxt.efficient.models.vit_torch.cp_LRP``, the patch map ``lxt`` ships for torchvision ViTs (GELU
  identity rule, layer norm with a detached std, q and k detached), applied as ``lxt.efficient.monkey_patch``
  applies a map;
* ``"attnlrp"``: the same map with the attention patched by ``lxt``'s own AttnLRP wrapper
  (``patches.wrap_attention_forward``: gradient / 4 at q and k, / 2 at v), as ``lxt`` does for language models.

``import lxt.efficient`` fails beside transformers 5 (lxt issue #47: its language-model modules import names that
transformers 5 removed), so the vision modules are imported under stand-in ``lxt.efficient`` and
``lxt.efficient.models`` packages that skip those files. Nothing here runs at import time.

``lxt`` is no dependency of salbench, not even a test extra: ``pip install lxt==2.1`` beside the pinned stack keeps
torch 2.14.1 but adds accelerate, bitsandbytes, open_clip_torch, ftfy and wcwidth (45 MB of wheels, 138 MB
installed, 125 MB of it bitsandbytes' CUDA libraries, none used by the vision path), and ``lxt`` still does not
import beside the transformers 5.25 that sentence-transformers 6.2 requires. ``pip install --no-deps lxt==2.1``
(a 49 KB sdist, 0.6 MB installed, pure Python) is all the parity test and ``benchmarks/attnlrp.py`` need; without
it the test is skipped with this reason.
"""

from __future__ import annotations

import contextlib
import importlib.util
import sys
import types
from pathlib import Path
from typing import Iterator

import torch
from torch import nn

#: the classes and attributes lxt's ViT patches replace
PATCHED = [(cls, attr) for cls in (nn.GELU, nn.LayerNorm, nn.MultiheadAttention)
           for attr in ("forward", "original_forward")]
_MISSING = object()


def lxt_available() -> bool:
    """Whether the ``lxt`` package is installed (it is not a dependency: see ``docs/fidelity.md``)."""
    return importlib.util.find_spec("lxt") is not None


def _vision_modules() -> tuple[types.ModuleType, types.ModuleType]:
    """``lxt.efficient.models.vit_torch`` and ``lxt.efficient.patches``, without the package ``__init__`` files."""
    root = Path(importlib.util.find_spec("lxt").submodule_search_locations[0]) / "efficient"
    for name, folder in (("lxt.efficient", root), ("lxt.efficient.models", root / "models")):
        if name not in sys.modules:
            package = types.ModuleType(name)
            package.__path__ = [str(folder)]
            sys.modules[name] = package
    import lxt.efficient.models.vit_torch as vit_torch
    import lxt.efficient.patches as patches

    return vit_torch, patches


def _attnlrp_attention(patches: types.ModuleType):
    """lxt's AttnLRP wrapper (q, k, v gradient / 4, / 4, / 2) around ``nn.MultiheadAttention``'s saved forward."""

    def original(module, query, key, value, *args, **kwargs):
        return module.original_forward(query, key, value, *args, **kwargs)

    forward = patches.wrap_attention_forward(original)
    return lambda target: patches.patch_method(forward, target, keep_original=True)


@contextlib.contextmanager
def lxt_patched(mode: str) -> Iterator[None]:
    """Within the block, ``torch.nn`` is patched by ``lxt`` for ``mode`` ("cp" or "attnlrp"); restored after."""
    saved = [(cls, attr, vars(cls).get(attr, _MISSING)) for cls, attr in PATCHED]
    try:
        vit_torch, patches = _vision_modules()
        patch_map = dict(vit_torch.cp_LRP)
        if mode == "attnlrp":
            patch_map[nn.MultiheadAttention] = _attnlrp_attention(patches)
        for target, patch in patch_map.items():
            assert patch(target), f"lxt could not patch {target.__name__}"
        yield
    finally:
        for cls, attr, value in saved:
            if value is _MISSING:
                if attr in vars(cls):
                    delattr(cls, attr)
            else:
                setattr(cls, attr, value)


def lxt_relevance(net: nn.Module, x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """``x * dy_c/dx`` for ``y[i, c_i]`` (call inside :func:`lxt_patched`), as ``lxt``'s ViT example computes it
    (there with ``backward()``; here without the parameters' gradients, which the map does not need)."""
    x = x.detach().requires_grad_()
    (grad,) = torch.autograd.grad(net(x).gather(1, target[:, None]).sum(), x)
    return x.detach() * grad
