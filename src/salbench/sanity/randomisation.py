"""Model-parameter randomisation (model sensitivity), cascading and independent (Adebayo et al. 2018).

Adebayo, Gilmer, Muelly, Goodfellow, Hardt & Kim, "Sanity Checks for Saliency Maps", NeurIPS 2018
(arXiv:1810.03292): re-initialise the weights of a trained model layer by layer from the logits down
to the first layer, cumulatively (*cascading*) or one layer at a time (*independent*), and compare each
stage's saliency map with the original one. A map that stays similar does not depend on the learned
parameters and fails the check. Binder et al., "Shortcomings of Top-Down Randomization-Based Sanity
Checks for Evaluations of Deep Neural Network Explanations", CVPR 2023 (arXiv:2211.12486), caution
that passing says little about faithfulness; the check is a necessary condition only.

Stages follow the model spec's top-down layer order (:func:`salbench.models.layers.randomisation_order`), or,
``bottom_up``, the order in which one forward pass first runs the layers (:func:`forward_order`: the
execution order, not registration order, which differs e.g. where a module registers its head first);
Binder et al. show that top-down randomisation keeps forward activation scales, so the complement from
the input up is run too (Hedström et al., "A Fresh Look at Sanity Checks for Saliency Maps", xAI 2024,
recommend it).
Each layer is re-initialised by its own ``reset_parameters()`` (the architecture's default initialiser,
not any custom init its builder applied; a module without one, such as a ViT's token owner, has its own
parameters redrawn from a normal with each trained tensor's mean and std, :func:`redraw_own_parameters_`), drawn on the CPU from a generator seeded by (seed, layer name)
only, so a stage is the same on every device, whichever stages were built before, and does not touch
the global RNG. Stages live in a deep copy; the original model is never modified.
"""

from __future__ import annotations

import copy
import hashlib
from collections import OrderedDict
from typing import Iterator, Sequence

import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from ..methods.base import Method
from ..models.layers import randomisation_order
from ..params import check_choice
from ..saliency import compute_maps
from .checks.randomisation import FULL, MODES, ORDERS
from .similarity import Similarity

#: "reset": batch-norm layers are stages too, reset to their initial state (unit scale, zero shift, running
#: mean 0 and variance 1); "keep": batch-norm layers keep their trained parameters and statistics
BATCHNORM: tuple[str, ...] = ("reset", "keep")
ORIGINAL = "original"


def _check(mode: str, batchnorm: str, order: str = ORDERS[0]) -> None:
    check_choice("check", FULL, "mode", mode, MODES)
    check_choice("check", FULL, "batchnorm", batchnorm, BATCHNORM)
    check_choice("check", FULL, "order", order, ORDERS)


def randomised_layers(model: nn.Module, batchnorm: str = "reset") -> list[str]:
    """Names of the layers the cascade re-initialises, top-down (logits first)."""
    check_choice("check", FULL, "batchnorm", batchnorm, BATCHNORM)
    layers = randomisation_order(model)
    if batchnorm == "keep":
        layers = [name for name in layers if not isinstance(model.get_submodule(name), _BatchNorm)]
    return layers


#: a randomisation block: (stage name, module-name prefixes of the layers it re-initialises)
Block = tuple[str, Sequence[str]]


def forward_order(model: nn.Module, layers: Sequence[str], example: torch.Tensor) -> list[str]:
    """``layers`` in the order one forward pass of ``example`` first calls them (never-called layers last,
    top-down among themselves). The pass runs under ``no_grad`` with temporary hooks, removed after."""
    calls: list[str] = []
    handles = [model.get_submodule(name).register_forward_pre_hook(lambda *_, name=name: calls.append(name))
               for name in layers]
    try:
        with torch.no_grad():
            model(example)
    finally:
        for handle in handles:
            handle.remove()
    first = list(dict.fromkeys(calls))
    return [*first, *(name for name in layers if name not in first)]


def stage_groups(model: nn.Module, batchnorm: str = "reset", blocks: Sequence[Block] | None = None,
                 order: str = ORDERS[0], example: torch.Tensor | None = None) -> list[tuple[str, list[str]]]:
    """``(stage name, layers re-initialised at that stage)``, top-down or ``bottom_up``.

    Without ``blocks`` every parameterised layer is its own stage. With ``blocks`` (a model spec's
    ``randomisation_blocks``, top-down, like Adebayo et al.'s Inception blocks) a stage re-initialises
    every layer under the block's prefixes; each randomised layer belongs to the block naming the longest prefix
    of it, which must be exactly one block (a ViT's embedding stage names ``net`` for the class token and position
    embeddings it owns, while its blocks and head name the modules below ``net``).
    ``bottom_up`` orders the stages (and the layers inside a block) by :func:`forward_order` of ``example``
    (one input item is enough), a block by its first-run layer.
    """
    groups = _top_down_groups(model, batchnorm, blocks)
    if order == ORDERS[0]:
        return groups
    check_choice("check", FULL, "order", order, ORDERS)
    if example is None:
        raise ValueError("bottom-up randomisation needs an example input to find the layers' forward order")
    rank = {name: k for k, name in enumerate(forward_order(model, randomised_layers(model, batchnorm), example))}
    ordered = [(name, sorted(layers, key=rank.__getitem__)) for name, layers in groups]
    return sorted(ordered, key=lambda group: rank[group[1][0]])


def _top_down_groups(model: nn.Module, batchnorm: str, blocks: Sequence[Block] | None) -> list[tuple[str, list[str]]]:
    layers = randomised_layers(model, batchnorm)
    if blocks is None:
        return [(name, [name]) for name in layers]

    def depth(layer: str, prefixes: Sequence[str]) -> int:
        """Length of the longest of ``prefixes`` naming ``layer`` or a module above it (-1: none)."""
        return max((len(p) for p in prefixes if layer == p or layer.startswith(p + ".")), default=-1)

    owners: dict[str, list[str]] = {}
    for layer in layers:
        depths = [depth(layer, prefixes) for _, prefixes in blocks]
        deepest = max(depths)
        owners[layer] = [name for (name, _), d in zip(blocks, depths) if d == deepest >= 0]
    groups = [(name, [layer for layer in layers if owners[layer] == [name]]) for name, _ in blocks]
    wrong = {layer: names for layer, names in owners.items() if len(names) != 1}
    if wrong or not all(group for _, group in groups):
        raise ValueError(f"randomisation blocks must cover each randomised layer exactly once and none may be "
                         f"empty; layer -> blocks: {wrong}, blocks: {[name for name, _ in groups]}")
    return groups


def stage_names(model: nn.Module, batchnorm: str = "reset", blocks: Sequence[Block] | None = None,
                order: str = ORDERS[0], example: torch.Tensor | None = None) -> list[str]:
    """``["original", <stage>, ...]``: stage ``k > 0`` is named after the k-th randomised layer or block."""
    return [ORIGINAL, *(name for name, _ in stage_groups(model, batchnorm, blocks, order, example))]


def layer_seed(seed: int, layer: str) -> int:
    """A 63-bit seed for ``layer``'s re-initialisation: sha256 of the study seed and the layer name."""
    digest = hashlib.sha256(f"{int(seed)}:{layer}".encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1


def copy_model(model: nn.Module) -> nn.Module:
    """``copy.deepcopy(model)``, with every module's empty hook and buffer-name containers made up front.

    A module carries about 14 of them (mostly empty hook ``OrderedDict`` objects), and deep-copying each goes
    through pickle's generic reconstruction: on the default CNN (21 modules) that is 0.9 of the copy's
    2.3 ms, which a cascade of 16 items at 64 px (about 65 ms of passes) pays once. The result is the same
    as ``deepcopy``'s (an empty container copies to a new empty one of its type).
    """
    memo = {id(value): type(value)() for module in model.modules() for value in vars(module).values()
            if type(value) in (dict, OrderedDict, set) and not value}
    return copy.deepcopy(model, memo)


def reinitialise_(layer: nn.Module, seed: int) -> None:
    """Re-initialise ``layer`` in place with its own ``reset_parameters()`` (without one:
    :func:`redraw_own_parameters_`), drawn on the CPU from ``seed``.

    The draw happens on the CPU under a forked CPU RNG, so the values do not depend on the layer's device
    or on the global RNG state, which is left as it was: a CPU layer is drawn in place, a layer elsewhere on
    a CPU copy whose values are then loaded (a deep copy costs more than the draw on small layers).
    """
    if not callable(getattr(layer, "reset_parameters", None)):
        redraw_own_parameters_(layer, seed)
        return
    on_cpu = all(t.device.type == "cpu" for t in (*layer.parameters(), *layer.buffers()))
    fresh = layer if on_cpu else copy.deepcopy(layer).to("cpu")
    with torch.random.fork_rng(devices=[]):
        torch.default_generator.manual_seed(seed)
        fresh.reset_parameters()
    if fresh is not layer:
        layer.load_state_dict(fresh.state_dict())


#: the standard deviation of a redrawn tensor whose trained values are all equal (timm's initial token scale)
FLAT_STD = 0.02


@torch.no_grad()
def redraw_own_parameters_(module: nn.Module, seed: int) -> None:
    """Redraw ``module``'s own parameters (not its children's) from ``N(mean, std)`` of each trained tensor
    (std :data:`FLAT_STD` where it is 0), on the CPU from ``seed``: the re-initialisation of modules without a
    ``reset_parameters()``, such as a ViT's class token and position embeddings or torchvision's packed attention
    projection (``transformer-methods.md`` §7)."""
    generator = torch.Generator().manual_seed(seed)
    for parameter in module.parameters(recurse=False):
        values = parameter.detach().to("cpu", torch.float64)
        std = float(values.std()) if values.numel() > 1 else 0.0
        draw = torch.randn(parameter.shape, generator=generator, dtype=torch.float64)
        parameter.copy_(draw * (std if std > 0 else FLAT_STD) + float(values.mean()))


def randomised_stages(
    model: nn.Module, seed: int, mode: str = "cascading", batchnorm: str = "reset",
    blocks: Sequence[Block] | None = None, order: str = ORDERS[0], example: torch.Tensor | None = None,
) -> Iterator[tuple[str, nn.Module]]:
    """Yield ``(stage_name, model)``: first ``("original", ...)``, then one stage per randomised layer or block.

    ``cascading``: stage k has the first k layers (blocks) of ``order`` re-initialised (the top k, or with
    ``bottom_up`` the first k that a forward pass of ``example`` runs); ``independent``: only the k-th. Each
    layer's draw depends on the seed and its name only, so both orders end in the same fully random model.
    The yielded model is one deep copy of ``model`` (same train/eval mode and device), updated in place
    from stage to stage, so a cascade costs one copy and one re-initialisation per layer: use it before
    advancing, and :func:`copy.deepcopy` it (or call :func:`stage_model`) to keep a stage.
    Stage k equals :func:`stage_model` ``(model, seed, k, ...)``.
    """
    _check(mode, batchnorm, order)
    groups = stage_groups(model, batchnorm, blocks, order, example)
    work = copy_model(model)
    yield ORIGINAL, work
    for name, layers in groups:
        for layer in layers:
            reinitialise_(work.get_submodule(layer), layer_seed(seed, layer))
        yield name, work
        if mode == "independent":
            for layer in layers:
                work.get_submodule(layer).load_state_dict(model.get_submodule(layer).state_dict())


def stage_model(
    model: nn.Module, seed: int, stage: int, mode: str = "cascading", batchnorm: str = "reset",
    blocks: Sequence[Block] | None = None, order: str = ORDERS[0], example: torch.Tensor | None = None,
) -> nn.Module:
    """The model of stage ``stage`` alone (0 = original), a deep copy built without visiting other stages."""
    _check(mode, batchnorm, order)
    groups = stage_groups(model, batchnorm, blocks, order, example)
    if not 0 <= stage <= len(groups):
        raise IndexError(f"stage {stage} out of range: this model has stages 0..{len(groups)}")
    chosen = groups[:stage] if mode == "cascading" else groups[stage - 1:stage] if stage else []
    randomised = copy_model(model)
    for _, layers in chosen:
        for layer in layers:
            reinitialise_(randomised.get_submodule(layer), layer_seed(seed, layer))
    return randomised


def stage_maps(
    method: Method,
    model: nn.Module,
    images: torch.Tensor,
    targets: torch.Tensor,
    seed: int,
    mode: str = "cascading",
    batchnorm: str = "reset",
    batch_size: int = 32,
    device: str | torch.device | None = None,
    blocks: Sequence[Block] | None = None,
    order: str = ORDERS[0],
    original: torch.Tensor | None = None,
) -> tuple[list[str], torch.Tensor]:
    """Stage names and maps ``[S,N,H,W]`` (float32, CPU) of ``method`` for every stage of the randomisation.

    Each stage's maps are computed once; all similarity measures and checks read them from here. ``original``:
    the original model's maps when already computed (stage 0 then costs nothing). A bottom-up order is found
    on the first image (moved to the model's device).
    """
    names, maps = [], []
    example = images[:1].to(next(model.parameters()).device, torch.float32) if order != ORDERS[0] else None
    for name, stage in randomised_stages(model, seed, mode, batchnorm, blocks, order, example):
        names.append(name)
        if name == ORIGINAL and original is not None:
            maps.append(original)
            continue
        maps.append(compute_maps(method, stage, images, targets, batch_size, progress=False, device=device))
    return names, torch.stack(maps)


def stage_similarities(maps: torch.Tensor, similarity: Similarity) -> dict[str, torch.Tensor]:
    """Similarity ``[S,N]`` (float64) of each stage's maps ``[S,N,H,W]`` to stage 0 (the original), per measure.

    The original maps are prepared once; each stage is prepared and compared on its own (row 0 is the
    original against itself), which keeps the prepared tensors small enough to stay in cache (about 1.8x
    faster than preparing all stages at once, with bit-identical values).
    """
    reference = similarity.prepare(maps[0])
    values = [similarity.compare(reference, similarity.prepare(stage)) for stage in maps]
    return {measure: torch.stack([value[measure] for value in values]) for measure in similarity.measures}
