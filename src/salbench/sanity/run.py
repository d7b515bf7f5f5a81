"""One sanity job: every registered check that applies to a data set, for one method on one model, as a tidy table.

Which checks run comes from the check registry (:mod:`.checks`): single-object data sets get the model-level
checks, two-object data sets the class checks, each only where the model has what it requires. Each distinct
``compute`` function (a check's own, or its family's, like the randomisation cascades) runs once on a
:class:`CheckJob`, which computes the maps every check shares once: the original maps and each
randomisation cascade. :func:`~.verdicts.verdict_values` says which per-item values each verdict reads.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
import pandas as pd
import torch
from torch import nn

from ..methods.base import Method
from ..saliency import compute_maps
from .checks import CHECKS, ORDERS, Check
from .randomisation import ORIGINAL, stage_maps
from .similarity import MEASURES, Similarity
from .smoothing import smoothed_stage_maps

COLUMNS = ["check", "statistic", "stage", "stage_index", "item", "value"]


@dataclass(frozen=True)
class SanitySettings:
    """The ``sanity`` section of a study config (see the config schema for meanings and defaults)."""

    items: int = 16
    modes: Sequence[str] = ("cascading", "independent")
    orders: Sequence[str] = ORDERS[:1]
    granularity: str = "block"
    batchnorm: str = "reset"
    measures: Sequence[str] = MEASURES
    measure: str = "spearman_abs"
    input_shift: float = -1.0
    noise_std: float = 0.02
    smprt_samples: int = 50
    smprt_noise: float = 0.1
    figure_items: int = 4
    data_randomisation: dict[str, Any] = field(default_factory=dict)
    thresholds: dict[str, float] = field(default_factory=dict)
    checks: Sequence[str] = ()

    @classmethod
    def from_config(cls, section: dict[str, Any]) -> "SanitySettings":
        """Settings from a validated config's ``sanity`` section."""
        names = set(cls.__dataclass_fields__)
        return cls(**{key: value for key, value in section.items() if key in names})

    def similarity(self) -> Similarity:
        """The similarity measures, always including the verdicts' ``measure``."""
        return Similarity(tuple(dict.fromkeys([*self.measures, self.measure])))


def rows(check: str, statistic: str, values: torch.Tensor | np.ndarray, items: Sequence[str], stage: str = "",
         stage_index: int = 0) -> pd.DataFrame:
    """A tidy block of per-item values of one (check, statistic, stage)."""
    values = np.asarray(values.cpu() if isinstance(values, torch.Tensor) else values, dtype=np.float64)
    return pd.DataFrame({"check": check, "statistic": statistic, "stage": stage, "stage_index": stage_index,
                         "item": list(items), "value": values})


def job_maps(job: "CheckJob", model: nn.Module, images: torch.Tensor | None = None,
             targets: torch.Tensor | None = None) -> torch.Tensor:
    """The job's method's maps ``[N,H,W]`` (CPU) on ``model`` (of the job's images and targets by default)."""
    return compute_maps(job.method, model, job.images if images is None else images,
                        job.targets if targets is None else targets, job.batch_size, progress=False,
                        device=job.device)


@dataclass
class CheckJob:
    """What a check's ``compute`` reads: the method, models and items of one sanity job, and the maps every
    check shares, each computed once (:meth:`original`, :meth:`cascade`). Class checks also get the method's
    ``maps`` of the two-object items, their ``masks``, ``image_ids`` and the data set's ``num_classes``."""

    method: Method
    model: nn.Module
    images: torch.Tensor
    targets: torch.Tensor
    items: Sequence[str]
    settings: SanitySettings
    seed: int
    batch_size: int
    device: str
    permuted: nn.Module | None = None
    blocks: Any = None
    maps: torch.Tensor | None = None
    masks: torch.Tensor | None = None
    image_ids: Sequence[str] = ()
    num_classes: int = 0
    similarity: Similarity = field(init=False)
    _original: torch.Tensor | None = field(default=None, init=False, repr=False)
    _cascades: dict[tuple[str, str], tuple[list[str], torch.Tensor]] = field(default_factory=dict, init=False,
                                                                             repr=False)
    _smoothed: dict[str, tuple[list[str], torch.Tensor]] = field(default_factory=dict, init=False, repr=False)

    def __post_init__(self) -> None:
        self.similarity = self.settings.similarity()
        if self.maps is not None:
            self._original = self.maps

    def rows(self, check: str, statistic: str, values: torch.Tensor | np.ndarray, stage: str = "",
             stage_index: int = 0) -> pd.DataFrame:
        """A tidy block of this job's per-item values (see :func:`rows`)."""
        return rows(check, statistic, values, self.items, stage, stage_index)

    def original(self) -> torch.Tensor:
        """The method's maps ``[N,H,W]`` on the trained model (stage 0 of every cascade)."""
        if self._original is None:
            self._original = job_maps(self, self.model)
        return self._original

    def cascade(self, mode: str, order: str) -> tuple[list[str], torch.Tensor]:
        """Stage names and maps ``[S,N,H,W]`` of the randomisation of ``mode`` and ``order`` (stage 0: the original)."""
        key = (mode, order)
        if key not in self._cascades:
            self._cascades[key] = stage_maps(self.method, self.model, self.images, self.targets, self.seed, mode,
                                             self.settings.batchnorm, self.batch_size, self.device, self.blocks,
                                             order, self._original)
            self._original = self._cascades[key][1][0]
        return self._cascades[key]

    def smoothed_cascade(self, order: str) -> tuple[list[str], torch.Tensor]:
        """Stage names and sMPRT's smoothed maps ``[S,N,H,W]`` of the cascading randomisation of ``order``: each
        map averaged over ``smprt_samples`` noisy inputs, the last one the :meth:`cascade`'s own map
        (:func:`~.smoothing.smoothed_stage_maps`)."""
        if order not in self._smoothed:
            names, clean = self.cascade("cascading", order)
            s = self.settings
            self._smoothed[order] = names, smoothed_stage_maps(
                self.method, self.model, self.images, self.targets, clean, self.seed, s.smprt_samples, s.smprt_noise,
                s.batchnorm, self.batch_size, self.device, self.blocks, order)
        return self._smoothed[order]


def applicable(objects: int, lacks: Any = (), named: Sequence[str] = ()) -> list[Check]:
    """The registered checks for data sets with ``objects`` per image on a model lacking ``lacks`` (capabilities),
    after registering the ``named`` ones (``sanity.checks``: plugins by import path, :mod:`salbench.plugins`)."""
    for name in named:  # a plugin named by import path registers on first use
        CHECKS.get(name)
    return [entry.obj for entry in CHECKS.entries()
            if entry.obj.objects == objects and not set(entry.obj.requires) & set(lacks)]


def run_checks(job: CheckJob, checks: Sequence[Check]) -> pd.DataFrame:
    """Each distinct ``compute`` of ``checks`` once, in registry order; the tidy table of all their rows."""
    frames: list[pd.DataFrame] = []
    for compute in dict.fromkeys(check.compute for check in checks):
        frames += compute(job)
    if not frames:
        return pd.DataFrame(columns=COLUMNS)
    return pd.concat(frames, ignore_index=True)[COLUMNS]


@dataclass
class ModelChecks:
    """What :func:`model_checks` produces: the tidy table, and the stored cascade's stage names and maps ``[S,N,H,W]``.

    With several cascading orders the stored cascade is the first order's followed by each other order's
    randomised stages, named ``"<order>:<stage>"`` (:func:`stored_cascade`)."""

    table: pd.DataFrame
    stages: list[str]
    cascade: torch.Tensor


def stored_cascade(job: CheckJob) -> tuple[list[str], torch.Tensor]:
    """The cascades a job keeps for the report's figure: every cascading order (else the independent one, else
    the original maps alone); later orders' stages are prefixed with their order and skip the shared original."""
    kept = [(order, *cascade) for (mode, order), cascade in job._cascades.items() if mode == "cascading"]
    if not kept:
        kept = [(order, *cascade) for (_, order), cascade in job._cascades.items()][:1]
    if not kept:
        return [ORIGINAL], job.original()[None]
    (_, names, maps), *others = kept
    for order, other_names, other_maps in others:
        names = [*names, *(f"{order}:{name}" for name in other_names[1:])]
        maps = torch.cat([maps, other_maps[1:]])
    return names, maps


def model_checks(method: Method, model: nn.Module, permuted: nn.Module | None, images: torch.Tensor,
                 targets: torch.Tensor, items: Sequence[str], settings: SanitySettings, seed: int,
                 blocks: Any, batch_size: int, device: str, checks: Sequence[str] | None = None) -> ModelChecks:
    """The registered checks of single-object data sets (the model-level checks) of ``method`` on ``model``; with
    ``checks`` (names), only those of them (a check sharing its computation brings its family's rows too)."""
    job = CheckJob(method, model, images, targets, items, settings, seed, batch_size, device, permuted, blocks)
    spec = getattr(model, "spec", None)
    selected = [check for check in applicable(1, getattr(spec, "lacks", {}), settings.checks)
                if checks is None or check.name in checks]
    table = run_checks(job, selected)
    stages, cascade = stored_cascade(job)
    return ModelChecks(table, stages, cascade)


def class_checks(method: Method, model: nn.Module, images: torch.Tensor, targets: torch.Tensor, maps: torch.Tensor,
                 masks: torch.Tensor, items: Sequence[str], image_ids: Sequence[str], num_classes: int,
                 settings: SanitySettings, seed: int, batch_size: int, device: str) -> pd.DataFrame:
    """The registered checks of two-object data sets (class checks), from the maps already computed for both classes."""
    job = CheckJob(method, model, images, targets, items, settings, seed, batch_size, device, maps=maps, masks=masks,
                   image_ids=image_ids, num_classes=num_classes)
    spec = getattr(model, "spec", None)
    return run_checks(job, applicable(2, getattr(spec, "lacks", {}), settings.checks))
