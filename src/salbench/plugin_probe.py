"""One cheap call of a plugin before any job, so that a wrong output shape fails config validation.

A method explains two random 64 px images on a freshly initialised ``small_cnn`` (3 classes) and must return
``[2, 64, 64]`` floats; a metric scores two random maps of them (with masks, the model and, when it re-runs
a method, Gradient) and must return 2 values; an architecture is built for 3 classes and must give ``[1, 3]``
logits for one image of its input size. Seeded (seed 0, torch's generator forked), about 0.1 s per plugin.
A method that cannot explain a ``small_cnn`` (another model family, or a capability it lacks) is not probed.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from .plugins import PluginError

PROBE_ARCH = "small_cnn"
PROBE_CLASSES = 3
PROBE_ITEMS = 2


def _inputs(size: int) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.rand(PROBE_ITEMS, 3, size, size), torch.arange(PROBE_ITEMS) % PROBE_CLASSES


def probe(section: str, name: str, params: dict[str, Any]) -> None:
    """Call plugin ``name`` of catalog ``section`` once; a :class:`PluginError` when it fails or returns the
    wrong shape."""
    kind = {"methods": "method", "metrics": "metric", "archs": "model architecture"}[section]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        try:
            shape, expected = {"methods": _probe_method, "metrics": _probe_metric, "archs": _probe_arch}[section](
                name, params)
        except PluginError:
            raise
        except Exception as err:
            raise PluginError(f"{kind} plugin {name!r} fails on a probe call ({type(err).__name__}: "
                              f"{' '.join(str(err).split())})") from err
    if shape is not None and shape != expected:
        raise PluginError(f"{kind} plugin {name!r} returns shape {shape} on a probe call; the contract is "
                          f"{expected}")


def _probe_model() -> Any:
    from .models import build_model

    return build_model(PROBE_ARCH, PROBE_CLASSES).eval()


def _probe_method(name: str, params: dict[str, Any]) -> tuple[tuple[int, ...] | None, tuple[int, ...]]:
    from .jobs import build_method
    from .methods import METHODS

    model = _probe_model()
    size = model.spec.input_size
    expected = (PROBE_ITEMS, size, size)
    cls = METHODS.get(name)
    if cls.skip_reason(cls, model.spec):  # reads class-level flags only: no instance needed
        return None, expected
    method = build_method(name, name, params, model, PROBE_ARCH)
    images, targets = _inputs(size)
    maps = method.attribute(model, images, targets)
    if not isinstance(maps, torch.Tensor) or not maps.is_floating_point():
        raise PluginError(f"method plugin {name!r} returns {type(maps).__name__} "
                          f"{getattr(maps, 'dtype', '')} on a probe call; the contract is a float tensor [B,H,W]")
    return tuple(maps.shape), expected


def _probe_metric(name: str, params: dict[str, Any]) -> tuple[tuple[int, ...] | None, tuple[int, ...]]:
    from .methods import create_method
    from .metrics import ScoringBatch, create_metric

    model = _probe_model()
    size = model.spec.input_size
    images, targets = _inputs(size)
    metric = create_metric(name, **params)
    batch = ScoringBatch(images=images, maps=torch.rand(PROBE_ITEMS, size, size), targets=targets,
                         masks=torch.rand(PROBE_ITEMS, size, size) > 0.5, model=model,
                         method=create_method("gradient") if metric.needs_method else None)
    values = np.asarray(metric.score(batch))
    return values.shape, (PROBE_ITEMS,)


def _probe_arch(name: str, params: dict[str, Any]) -> tuple[tuple[int, ...] | None, tuple[int, ...]]:
    from .models import build_model

    model = build_model(name, PROBE_CLASSES).eval()
    size = model.spec.input_size
    with torch.no_grad():
        logits = model(torch.rand(1, 3, size, size))
    return tuple(logits.shape), (1, PROBE_CLASSES)
