"""RISE weights each mask by the model's own probability: sigmoid for a BCE-trained CoDA-Net (the CoDA authors'
RISE wrapper reads ``trainer.predict``, the sigmoid), softmax for a cross-entropy model (the RISE paper)."""

import torch
from torch import nn

from salbench.methods import create_method
from salbench.models import NormalizedClassifier, build_model
from salbench.models.coda import CoDAConfig, CoDANet, coda_spec

TINY = CoDAConfig(channels=(5, 4, 3), ranks=(3, 4, 2), kernels=(3, 3, 1), strides=(1, 2, 1), paddings=(1, 1, 0),
                  temperature=7.0)
MASKS = {"n_masks": 24, "cells": 4, "p": 0.3, "baseline": "black"}


class Probabilities(nn.Module):
    """The model's logits mapped by ``fn``: RISE with ``score="logit"`` on it weights masks by ``fn(logits)``."""

    def __init__(self, model: nn.Module, fn) -> None:
        super().__init__()
        self.model, self.fn = model, fn

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fn(self.model(x))


def test_rise_on_a_coda_net_is_scored_on_the_sigmoid():
    torch.manual_seed(0)
    model = NormalizedClassifier(CoDANet(TINY, 3), coda_spec("tiny_coda", TINY, 8)).eval()
    x, target = torch.rand(2, 3, 8, 8), torch.tensor([1, 2])
    default = create_method("rise", **MASKS).attribute(model, x, target)
    sigmoid = create_method("rise", **MASKS, score="logit").attribute(Probabilities(model, torch.sigmoid), x, target)
    torch.testing.assert_close(default, sigmoid)
    torch.testing.assert_close(create_method("rise", **MASKS, score="sigmoid").attribute(model, x, target), sigmoid)
    softmax = create_method("rise", **MASKS, score="softmax").attribute(model, x, target)
    assert (default - softmax).abs().max() > 1e-3  # the old default, softmax, gives another map


def test_rise_on_a_cross_entropy_model_keeps_the_softmax():
    torch.manual_seed(0)
    model = build_model("small_cnn", 3).eval()
    x, target = torch.rand(2, 3, 32, 32), torch.tensor([0, 2])
    softmax = create_method("rise", **MASKS, score="logit").attribute(
        Probabilities(model, lambda logits: logits.softmax(dim=1)), x, target)
    torch.testing.assert_close(create_method("rise", **MASKS).attribute(model, x, target), softmax)
