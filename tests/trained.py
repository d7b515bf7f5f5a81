"""The embedded default's models, trained once per test session with its own recipe (slow tests only)."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path

import torch

from salbench.config import load_config
from salbench.data import create_dataset
from salbench.data.base import Items
from salbench.models import build_model
from salbench.models.base import NormalizedClassifier
from salbench.train import train_classifier

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Trained:
    """A default model trained as ``config/config.yaml`` says, its training record and evaluation items."""

    model: NormalizedClassifier
    metrics: dict
    eval_items: Items
    pair_items: Items


def as_inputs(items: Items) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(images [N,3,H,W] in [0,1], targets [N], masks [N,H,W] bool)`` of data-set items."""
    images = torch.from_numpy(items.images).permute(0, 3, 1, 2).float() / 255
    return images, torch.from_numpy(items.targets).long(), torch.from_numpy(items.masks)


@cache
def trained_default(arch: str) -> Trained:
    """Train the default config's model of ``arch`` on its ``shapes`` data (cached for the session)."""
    config = load_config(ROOT / "config" / "config.yaml")
    model_name = next(name for name, spec in config["models"].items() if spec["arch"] == arch)
    source = create_dataset("shapes", **config["datasets"]["shapes"]["params"])
    pairs = create_dataset("shapes_pair", **config["datasets"]["shapes_pair"]["params"])
    torch.manual_seed(0)
    model = build_model(arch, len(source.classes))
    metrics = train_classifier(model, source.generate("train"), source.generate("val"), seed=0, progress=False,
                               **config["models"][model_name]["train"])
    return Trained(model.eval(), metrics, source.generate("eval"), pairs.generate("eval"))
