"""Training the small classifiers of the embedded default (and their random-label twins).

Seeded end to end: torch's global seed (initial state of anything stochastic in the model) and one
``torch.Generator`` for batch order and augmentation, so the same seed gives the same weights on the
same machine. ``permute_labels`` trains on a seeded permutation of the training labels, the model
for the data-randomisation sanity check; validation always scores against the true labels.
"""

from __future__ import annotations

import contextlib
import math
import sys
import time
from typing import Any, Iterable, Iterator

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from .data.base import Items


def to_tensor(images: np.ndarray, device: str | torch.device = "cpu") -> torch.Tensor:
    """uint8 ``[N,H,W,3]`` images as float32 ``[N,3,H,W]`` in [0, 1] on ``device``, converted at once."""
    return torch.from_numpy(np.ascontiguousarray(images)).to(device).permute(0, 3, 1, 2).float().div_(255).contiguous()


def random_dihedral(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Each square image of ``x`` [B,C,H,H] under one of the 8 symmetries of the square, drawn at random."""
    flips = (torch.rand(len(x), 3, 1, 1, 1, generator=generator) < 0.5).to(x.device)
    x = torch.where(flips[:, 0], x.flip(-1), x)
    x = torch.where(flips[:, 1], x.flip(-2), x)
    return torch.where(flips[:, 2], x.transpose(-1, -2), x)


@torch.no_grad()
@torch.no_grad()
def accuracy(model: nn.Module, images: torch.Tensor, targets: torch.Tensor, batch_size: int = 256) -> float:
    """Top-1 accuracy of ``model`` (put in eval mode) on pre-converted images."""
    model.eval()
    correct = sum(int((model(images[i:i + batch_size]).argmax(1) == targets[i:i + batch_size]).sum())
                  for i in range(0, len(images), batch_size))
    return correct / max(len(images), 1)


@contextlib.contextmanager
def deterministic_algorithms() -> Iterator[None]:
    """Ask torch for deterministic kernels (warning where there are none) and restore the setting after."""
    enabled = torch.are_deterministic_algorithms_enabled()
    warn_only = torch.is_deterministic_algorithms_warn_only_enabled()
    torch.use_deterministic_algorithms(True, warn_only=True)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(enabled, warn_only=warn_only)


def _train_epoch(
    model: nn.Module,
    images: torch.Tensor,
    targets: torch.Tensor,
    batches: Iterable[torch.Tensor],
    optimizer: torch.optim.Optimizer,
    schedule: torch.optim.lr_scheduler.LRScheduler,
    augment_with: torch.Generator | None,
) -> tuple[float, float]:
    """One pass over ``batches`` (index tensors); returns mean loss and accuracy on the (augmented) batches."""
    model.train()
    total_loss, correct, seen = 0.0, 0, 0
    for index in batches:
        x, y = images[index], targets[index]
        logits = model(random_dihedral(x, augment_with) if augment_with is not None else x)
        loss = nn.functional.cross_entropy(logits, y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
        total_loss += loss.item() * len(y)
        correct += int((logits.argmax(1) == y).sum())
        seen += len(y)
        if isinstance(batches, tqdm):
            batches.set_postfix(loss=f"{loss.item():.3f}")
    return total_loss / seen, correct / seen


def train_classifier(
    model: nn.Module,
    train: Items,
    val: Items,
    *,
    epochs: int,
    lr: float,
    batch_size: int,
    weight_decay: float,
    seed: int,
    device: str | torch.device = "cpu",
    permute_labels: bool = False,
    augment: bool = True,
    max_train: int | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Train ``model`` in place with AdamW and a one-cycle schedule; return metrics (model left in eval mode).

    ``augment`` maps each training image through a random symmetry of the square (flips and
    transposition): every shape class is closed under them, and they keep the nets from memorising
    background textures. ``max_train`` keeps only the first items of the training split: the data
    randomisation check's permuted-label model memorises a small training set instead of a large one.
    ``final_train_accuracy`` is measured after training, in eval mode, on the (possibly permuted) labels.
    """
    if epochs < 1 or batch_size < 1 or not len(train):
        raise ValueError(f"need epochs >= 1, batch_size >= 1 and training items; "
                         f"got {epochs}, {batch_size}, {len(train)} items")
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    model.to(device)
    if max_train is not None and max_train < 1:
        raise ValueError(f"max_train must be a positive number of items, got {max_train}")
    keep = slice(0, max_train)
    x_train, x_val = to_tensor(train.images[keep], device), to_tensor(val.images, device)
    y_train = torch.as_tensor(train.targets[keep], dtype=torch.long)
    if permute_labels:
        y_train = y_train[torch.randperm(len(y_train), generator=generator)]
    y_train, y_val = y_train.to(device), torch.as_tensor(val.targets, dtype=torch.long, device=device)

    steps = math.ceil(len(x_train) / batch_size)  # = len(order.split(batch_size)) every epoch
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=lr, epochs=epochs, steps_per_epoch=steps)
    history: dict[str, list[float]] = {"train_loss": [], "train_accuracy": [], "val_accuracy": []}
    start = time.perf_counter()
    with deterministic_algorithms():
        for epoch in range(epochs):
            order = torch.randperm(len(x_train), generator=generator).to(device)
            bar = tqdm(order.split(batch_size), desc=f"epoch {epoch + 1}/{epochs}", file=sys.stderr,
                       disable=not progress, leave=False)
            loss, train_accuracy = _train_epoch(model, x_train, y_train, bar, optimizer, schedule,
                                                generator if augment else None)
            history["train_loss"].append(loss)
            history["train_accuracy"].append(train_accuracy)
            history["val_accuracy"].append(accuracy(model, x_val, y_val))
            if progress:
                print(f"epoch {epoch + 1}/{epochs}: loss {loss:.4f} train acc {train_accuracy:.3f} "
                      f"val acc {history['val_accuracy'][-1]:.3f}", file=sys.stderr)
    model.eval()
    return {
        **history,
        "final_val_accuracy": history["val_accuracy"][-1],
        "final_train_accuracy": accuracy(model, x_train, y_train),
        "seconds": time.perf_counter() - start,
        "seed": seed, "epochs": epochs, "lr": lr, "batch_size": batch_size, "weight_decay": weight_decay,
        "augment": augment, "permute_labels": permute_labels, "n_train": len(x_train), "n_val": len(x_val),
        "device": str(device),
    }
