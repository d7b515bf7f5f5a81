"""One sanity job: every check that applies to a data set, for one method on one model, as a tidy table.

Single-object data sets get the model-level checks: parameter randomisation (cascading and/or
independent, with the maps of every stage), data randomisation (a model trained on permuted labels),
input invariance and input sensitivity. Two-object data sets get class sensitivity and the random-logit
test. The original maps are computed once (stage 0 of the first randomisation mode) and shared by every
check and similarity measure. :data:`~.verdicts.VERDICT_STATISTIC` says which per-item values each verdict reads.
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
from .class_sensitivity import class_sensitivity, random_logit
from .input_sensitivity import input_sensitivity
from .invariance import input_invariance
from .randomisation import ORIGINAL, stage_maps, stage_similarities
from .similarity import MEASURES, Similarity

COLUMNS = ["check", "statistic", "stage", "stage_index", "item", "value"]
@dataclass(frozen=True)
class SanitySettings:
    """The ``sanity`` section of a study config (see the config schema for meanings and defaults)."""

    items: int = 16
    modes: Sequence[str] = ("cascading", "independent")
    granularity: str = "block"
    batchnorm: str = "reset"
    measures: Sequence[str] = MEASURES
    measure: str = "spearman_abs"
    input_shift: float = -1.0
    noise_std: float = 0.02
    figure_items: int = 4
    data_randomisation: dict[str, Any] = field(default_factory=dict)
    thresholds: dict[str, float] = field(default_factory=dict)

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


@dataclass
class ModelChecks:
    """What :func:`model_checks` produces: the tidy table, and the cascade's stage names and maps ``[S,N,H,W]``."""

    table: pd.DataFrame
    stages: list[str]
    cascade: torch.Tensor


def model_checks(method: Method, model: nn.Module, permuted: nn.Module | None, images: torch.Tensor,
                 targets: torch.Tensor, items: Sequence[str], settings: SanitySettings, seed: int,
                 blocks: Any, batch_size: int, device: str) -> ModelChecks:
    """Randomisation (per mode), data randomisation, input invariance and input sensitivity of ``method``."""
    similarity = settings.similarity()
    frames, kept_stages, kept_maps, original = [], [], None, None
    for mode in settings.modes:
        names, maps = stage_maps(method, model, images, targets, seed, mode, settings.batchnorm, batch_size, device,
                                 blocks)
        check = "model_sensitivity" if mode == "cascading" else f"model_sensitivity_{mode}"
        for statistic, values in stage_similarities(maps, similarity).items():
            frames += [rows(check, statistic, values[k], items, name, k) for k, name in enumerate(names)]
        original = maps[0] if original is None else original
        if kept_maps is None or mode == "cascading":
            kept_stages, kept_maps = names, maps
    if original is None:
        original = compute_maps(method, model, images, targets, batch_size, progress=False, device=device)
    if permuted is not None:
        random_labels = compute_maps(method, permuted, images, targets, batch_size, progress=False, device=device)
        for statistic, values in similarity(original, random_labels).items():
            frames.append(rows("data_randomisation", statistic, values, items, "random_labels", 1))
    invariance = input_invariance(method, model, images, targets, settings.input_shift, batch_size=batch_size,
                                  device=device, maps=original)
    frames += [rows("input_invariance", statistic, values, items) for statistic, values in invariance.items()]
    sensitivity = input_sensitivity(method, model, images, targets, original, similarity, settings.measure,
                                    settings.noise_std, seed, batch_size, device)
    frames += [rows("input_sensitivity", statistic, values, items) for statistic, values in sensitivity.items()]
    stages = kept_stages or [ORIGINAL]
    cascade = kept_maps if kept_maps is not None else original[None]
    return ModelChecks(pd.concat(frames, ignore_index=True)[COLUMNS], stages, cascade)


def class_checks(method: Method, model: nn.Module, images: torch.Tensor, targets: torch.Tensor, maps: torch.Tensor,
                 masks: torch.Tensor, items: Sequence[str], image_ids: Sequence[str], num_classes: int,
                 settings: SanitySettings, seed: int, batch_size: int, device: str) -> pd.DataFrame:
    """Class sensitivity (from the maps already computed for both classes) and the random-logit test."""
    similarity = settings.similarity()
    sensitivity = class_sensitivity(maps, masks, image_ids, similarity, settings.measure)
    frames = [rows("class_sensitivity", statistic, values, items) for statistic, values in sensitivity.items()]
    logit = random_logit(method, model, images, targets, maps, num_classes, similarity, settings.measure, seed,
                         batch_size, device)
    frames.append(rows("random_logit", settings.measure, logit, items))
    return pd.concat(frames, ignore_index=True)[COLUMNS]
