"""Training the small classifiers of the embedded default (and their random-label twins).

Seeded end to end: torch's global seed (initial state of anything stochastic in the model) and one
``torch.Generator`` for batch order and augmentation, so the same seed gives the same weights on the
same machine. ``permute_labels`` trains on a seeded permutation of the training labels, the model
for the data-randomisation sanity check; validation always scores against the true labels.

The default recipe (cross-entropy, AdamW, one-cycle schedule, dihedral augmentation) trains the small
CNNs. The CoDA-Net recipe (Böhle, Fritz & Schiele, CVPR 2021, arXiv:2104.00032) is the options
``loss: bce`` (binary cross-entropy on one-hot targets), ``optimizer: adam``, ``schedule: step``
(``lr * lr_decay ** -floor(epoch / lr_step)``, the paper's 1.5 every 30 epochs) and
``augmentation: flip_crop`` (random horizontal flip and random crop with zero padding ``crop_padding``).

A loss or weights that stop being finite (a learning rate far too high, ``lr: .inf``) end training with a
:class:`TrainingDiverged` naming the step and the config key, before any checkpoint is written.
"""

from __future__ import annotations

import contextlib
import math
import sys
import time
from functools import partial
from typing import Any, Callable, Iterable, Iterator

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from .data.base import Items
from .models.base import to_device
from .params import ConfigError, ParamError, check_choice
from .provenance import set_deterministic_algorithms

LOSSES: tuple[str, ...] = ("cross_entropy", "bce")
OPTIMIZERS: tuple[str, ...] = ("adamw", "adam")
SCHEDULES: tuple[str, ...] = ("one_cycle", "step")
AUGMENTATIONS: tuple[str, ...] = ("dihedral", "flip_crop")
#: metrics of :func:`train_classifier` that time the run: they differ between identical runs, so they go to the
#: ``.train.json`` record only, and the checkpoint's bytes (its sha256) depend on what was computed alone
TIMING_KEYS: tuple[str, ...] = ("seconds", "cpu_seconds")


class TrainingDiverged(ConfigError):
    """The loss or the weights stopped being finite: the training settings (most often ``lr``) diverge.

    A :class:`ConfigError`: the command line prints it as one line, naming the config key to change.
    """


class _NonFiniteLoss(ArithmeticError):
    """Raised inside an epoch at the first non-finite loss; :func:`train_classifier` names the epoch."""

    def __init__(self, step: int, loss: float) -> None:
        super().__init__(step, loss)
        self.step, self.loss = step, loss


def without_timing(metrics: dict[str, Any]) -> dict[str, Any]:
    """``metrics`` less the :data:`TIMING_KEYS` (for the checkpoint's metadata)."""
    return {key: value for key, value in metrics.items() if key not in TIMING_KEYS}


def to_tensor(images: np.ndarray, device: str | torch.device = "cpu") -> torch.Tensor:
    """uint8 ``[N,H,W,3]`` images as float32 ``[N,3,H,W]`` in [0, 1] on ``device``, converted at once."""
    return torch.from_numpy(np.ascontiguousarray(images)).to(device).permute(0, 3, 1, 2).float().div_(255).contiguous()


def random_dihedral(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Each square image of ``x`` [B,C,H,H] under one of the 8 symmetries of the square, drawn at random."""
    flips = (torch.rand(len(x), 3, 1, 1, 1, generator=generator) < 0.5).to(x.device)
    x = torch.where(flips[:, 0], x.flip(-1), x)
    x = torch.where(flips[:, 1], x.flip(-2), x)
    return torch.where(flips[:, 2], x.transpose(-1, -2), x)


def random_flip_crop(x: torch.Tensor, generator: torch.Generator, padding: int) -> torch.Tensor:
    """Random horizontal flip, then a random ``H x W`` crop of the image zero-padded by ``padding`` on each side.

    torchvision's ``RandomHorizontalFlip`` + ``RandomCrop(size, padding)`` for a batch ``[B,C,H,W]``, with
    every draw from ``generator``.
    """
    b, c, h, w = x.shape
    flips = (torch.rand(b, 1, 1, 1, generator=generator) < 0.5).to(x.device)
    x = torch.where(flips, x.flip(-1), x)
    if padding == 0:
        return x
    offsets = torch.randint(0, 2 * padding + 1, (2, b), generator=generator).to(x.device)
    rows = (offsets[0, :, None] + torch.arange(h, device=x.device)).view(b, 1, h, 1)
    cols = (offsets[1, :, None] + torch.arange(w, device=x.device)).view(b, 1, 1, w)
    batch = torch.arange(b, device=x.device).view(b, 1, 1, 1)
    channels = torch.arange(c, device=x.device).view(1, c, 1, 1)
    return F.pad(x, (padding,) * 4)[batch, channels, rows, cols]


def classification_loss(logits: torch.Tensor, targets: torch.Tensor, loss: str) -> torch.Tensor:
    """Mean cross-entropy (softmax) or mean binary cross-entropy of every logit against one-hot targets."""
    if loss == "bce":
        one_hot = F.one_hot(targets, logits.shape[1]).to(logits.dtype)
        return F.binary_cross_entropy_with_logits(logits, one_hot)
    return F.cross_entropy(logits, targets)


def _check_settings(model: nn.Module, loss: str, optimizer: str, schedule: str, lr_step: int, lr_decay: float,
                    augmentation: str, crop_padding: int) -> None:
    """A :class:`ParamError` naming the training setting that is not allowed."""
    name = getattr(getattr(model, "spec", None), "arch", type(model).__name__)
    for key, value, allowed in (("loss", loss, LOSSES), ("optimizer", optimizer, OPTIMIZERS),
                                ("schedule", schedule, SCHEDULES), ("augmentation", augmentation, AUGMENTATIONS)):
        check_choice("train", name, key, value, allowed)
    for key, value, minimum in (("lr_step", lr_step, 1), ("crop_padding", crop_padding, 0)):
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise ParamError(f"train {name!r}: {key} must be an integer >= {minimum}, got {value!r}")
    if isinstance(lr_decay, bool) or not isinstance(lr_decay, (int, float)) or not lr_decay >= 1:
        raise ParamError(f"train {name!r}: lr_decay must be a number >= 1, got {lr_decay!r}")


def make_scheduler(optimizer: torch.optim.Optimizer, schedule: str, lr: float, epochs: int, steps: int, lr_step: int,
                   lr_decay: float) -> torch.optim.lr_scheduler.LRScheduler:
    """Stepped once per batch: one-cycle, or ``lr * lr_decay ** -floor(epoch / lr_step)``."""
    if schedule == "step":
        return torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda step: lr_decay ** -(step // (steps * lr_step)))
    return torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=lr, epochs=epochs, steps_per_epoch=steps)


def _non_finite_weights(model: nn.Module) -> str | None:
    """The name of the first parameter of ``model`` holding a NaN or an infinity, or None."""
    return next((key for key, value in model.named_parameters() if not bool(torch.isfinite(value).all())), None)


def _diverged(model: nn.Module, name: str | None, permuted: bool, lr: float, what: str) -> TrainingDiverged:
    """The one-line error for a diverged training run: the model, where it diverged, the config key to look at."""
    arch = getattr(getattr(model, "spec", None), "arch", type(model).__name__)
    section = "permuted_train" if permuted else "train"
    key = f"models.{name or '<model>'}.{section}.lr"
    return TrainingDiverged(f"training model {name or arch!r} ({arch}{', permuted labels' if permuted else ''}) "
                            f"diverged: {what}; nothing was written. Lower config key {key!r} (now {lr}) or check "
                            "the model's other training settings")


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
    set_deterministic_algorithms(True, warn_only=True)
    try:
        yield
    finally:
        set_deterministic_algorithms(enabled, warn_only=warn_only)


def _train_epoch(
    model: nn.Module,
    images: torch.Tensor,
    targets: torch.Tensor,
    batches: Iterable[torch.Tensor],
    optimizer: torch.optim.Optimizer,
    schedule: torch.optim.lr_scheduler.LRScheduler,
    augment: Callable[[torch.Tensor], torch.Tensor] | None,
    loss_name: str = "cross_entropy",
) -> tuple[float, float]:
    """One pass over ``batches`` (index tensors); returns mean loss and accuracy on the (augmented) batches.

    Raises :class:`_NonFiniteLoss` at the first batch whose loss is not finite.
    """
    model.train()
    total_loss, correct, seen = 0.0, 0, 0
    for step, index in enumerate(batches, 1):
        x, y = images[index], targets[index]
        logits = model(augment(x) if augment is not None else x)
        loss = classification_loss(logits, y, loss_name)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
        value = loss.item()
        if not math.isfinite(value):
            raise _NonFiniteLoss(step, value)
        total_loss += value * len(y)
        correct += int((logits.argmax(1) == y).sum())
        seen += len(y)
        if isinstance(batches, tqdm):
            batches.set_postfix(loss=f"{value:.3f}")
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
    loss: str = "cross_entropy",
    optimizer: str = "adamw",
    schedule: str = "one_cycle",
    lr_step: int = 30,
    lr_decay: float = 1.5,
    augmentation: str = "dihedral",
    crop_padding: int = 4,
    name: str | None = None,
) -> dict[str, Any]:
    """Train ``model`` in place; return metrics (model left in eval mode).

    By default: cross-entropy, AdamW and a one-cycle schedule. ``loss="bce"`` (binary cross-entropy on
    one-hot targets), ``optimizer="adam"`` (``weight_decay`` as an L2 term) and ``schedule="step"``
    (``lr * lr_decay ** -floor(epoch / lr_step)``) give the CoDA-Net recipe. With ``augment``,
    ``augmentation="dihedral"`` maps each training image through a random symmetry of the square (flips
    and transposition): every shape class is closed under them, and they keep the nets from memorising
    background textures; ``"flip_crop"`` is a random horizontal flip and a random crop of the image
    zero-padded by ``crop_padding`` (CIFAR-10 training). ``max_train`` keeps only the first items of the
    training split: the data randomisation check's permuted-label model memorises a small training set
    instead of a large one. ``final_train_accuracy`` is measured after training, in eval mode, on the
    (possibly permuted) labels. ``name`` is the model's name in the config, for the message of a
    :class:`TrainingDiverged` (raised when the loss or the weights stop being finite).
    """
    if epochs < 1 or batch_size < 1 or not len(train):
        raise ValueError(f"need epochs >= 1, batch_size >= 1 and training items; "
                         f"got {epochs}, {batch_size}, {len(train)} items")
    _check_settings(model, loss, optimizer, schedule, lr_step, lr_decay, augmentation, crop_padding)
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    to_device(model, device)
    if max_train is not None and max_train < 1:
        raise ValueError(f"max_train must be a positive number of items, got {max_train}")
    keep = slice(0, max_train)
    x_train, x_val = to_tensor(train.images[keep], device), to_tensor(val.images, device)
    y_train = torch.as_tensor(train.targets[keep], dtype=torch.long)
    if permute_labels:
        y_train = y_train[torch.randperm(len(y_train), generator=generator)]
    y_train, y_val = y_train.to(device), torch.as_tensor(val.targets, dtype=torch.long, device=device)

    steps = math.ceil(len(x_train) / batch_size)  # = len(order.split(batch_size)) every epoch
    optimizer_cls = torch.optim.Adam if optimizer == "adam" else torch.optim.AdamW
    opt = optimizer_cls(model.parameters(), lr=lr, weight_decay=weight_decay)
    scheduler = make_scheduler(opt, schedule, lr, epochs, steps, lr_step, lr_decay)
    augment_fn: Callable[[torch.Tensor], torch.Tensor] | None = None
    if augment:
        augment_fn = (partial(random_dihedral, generator=generator) if augmentation == "dihedral"
                      else partial(random_flip_crop, generator=generator, padding=crop_padding))
    history: dict[str, list[float]] = {"train_loss": [], "train_accuracy": [], "val_accuracy": []}
    start, start_cpu = time.perf_counter(), time.process_time()
    with deterministic_algorithms():
        for epoch in range(epochs):
            order = torch.randperm(len(x_train), generator=generator).to(device)
            bar = tqdm(order.split(batch_size), desc=f"epoch {epoch + 1}/{epochs}", file=sys.stderr,
                       disable=not progress, leave=False)
            try:
                epoch_loss, train_accuracy = _train_epoch(model, x_train, y_train, bar, opt, scheduler, augment_fn,
                                                          loss)
            except _NonFiniteLoss as err:
                raise _diverged(model, name, permute_labels, lr, f"the loss is {err.loss} at epoch {epoch + 1}/"
                                f"{epochs}, step {err.step}/{steps}") from None
            weights = _non_finite_weights(model)
            if weights:
                raise _diverged(model, name, permute_labels, lr, f"the weights ({weights}) are not finite after "
                                f"epoch {epoch + 1}/{epochs}")
            history["train_loss"].append(epoch_loss)
            history["train_accuracy"].append(train_accuracy)
            history["val_accuracy"].append(accuracy(model, x_val, y_val))
            if progress:
                print(f"epoch {epoch + 1}/{epochs}: loss {epoch_loss:.4f} train acc {train_accuracy:.3f} "
                      f"val acc {history['val_accuracy'][-1]:.3f}", file=sys.stderr)
    model.eval()
    return {
        **history,
        "final_val_accuracy": history["val_accuracy"][-1],
        "final_train_accuracy": accuracy(model, x_train, y_train),
        "seconds": time.perf_counter() - start,
        "cpu_seconds": time.process_time() - start_cpu,  # all threads of this process
        "seed": seed, "epochs": epochs, "lr": lr, "batch_size": batch_size, "weight_decay": weight_decay,
        "augment": augment, "permute_labels": permute_labels, "n_train": len(x_train), "n_val": len(x_val),
        "device": str(device), "loss": loss, "optimizer": optimizer, "schedule": schedule,
        "torch_threads": torch.get_num_threads(),  # the weights depend on it (the workflow fixes it to 1)
        **({"lr_step": lr_step, "lr_decay": lr_decay} if schedule == "step" else {}),
        "augmentation": augmentation, **({"crop_padding": crop_padding} if augmentation == "flip_crop" else {}),
    }
