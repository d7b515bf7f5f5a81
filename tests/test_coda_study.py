"""The CoDA-Nets study config follows the authors' evaluation code (interpretability/ in github.com/moboehle/
CoDA-Nets), and Grad-CAM upsamples as their captum call does (``LayerGradCam.interpolate``: nearest)."""

from pathlib import Path

import numpy as np
import torch

from salbench.config import read_config_file, validate_config
from salbench.methods import create_method
from salbench.models import NormalizedClassifier
from salbench.models.coda import CoDAConfig, CoDANet, coda_spec

ROOT = Path(__file__).resolve().parents[1]
TINY = CoDAConfig(channels=(5, 4, 3), ranks=(3, 4, 2), kernels=(3, 3, 1), strides=(1, 2, 1), paddings=(1, 1, 0),
                  temperature=7.0)


def study() -> dict:
    return validate_config(read_config_file(ROOT / "config" / "coda_cifar10.yaml"))


def test_study_protocol_is_the_authors():
    config = study()
    params = {name: entry.get("params", {}) for name, entry in config["methods"].items()}
    assert params["gradcam"]["upsample"] == "nearest"  # captum's interpolate default
    assert params["integrated_gradients"] == {"n_steps": 20, "baseline": "black", "method": "gausslegendre"}
    # their Occ5 / Occ9 zero [c - 2, c + 2) / [c - 4, c + 4) around every 2nd pixel
    assert (params["occlusion_5"]["window"], params["occlusion_9"]["window"]) == (4, 8)
    assert params["occlusion_5"]["stride"] == params["occlusion_9"]["stride"] == 2
    assert params["rise"] == {"n_masks": 6000, "cells": 6, "p": 0.1, "score": "sigmoid", "baseline": "black"}
    assert config["metrics"]["pixel_removal"]["params"] == {"fraction": 0.25, "readout": "sigmoid", "baseline": "auto"}
    assert {k: config["grid"][k] for k in ("n", "n_grids", "min_probability", "seed")} == {
        "n": 3, "n_grids": 500, "min_probability": 0.5, "seed": 42}


def test_gradcam_at_the_last_coda_layer_is_nearest_upsampled():
    """By hand: the last DAU layer feeds the sum pool and logit = sum / T + b, so d logit_c / d a = 1/T on
    channel c and 0 elsewhere; Grad-CAM = relu(a_c) / T on the 4 x 4 map, each value repeated over 2 x 2 px."""
    torch.manual_seed(0)
    model = NormalizedClassifier(CoDANet(TINY, 3), coda_spec("tiny_coda", TINY, 8)).eval()
    x, target = torch.rand(2, 3, 8, 8), torch.tensor([2, 0])
    upsample = study()["methods"]["gradcam"]["params"]["upsample"]
    maps = create_method("gradcam", layer="net.layers.2", upsample=upsample).attribute(model, x, target)
    with torch.no_grad():
        last = model.net.layers(torch.cat([x, 1 - x], dim=1))  # [2, 3, 4, 4]
    for b in range(2):
        layer_map = last[b, target[b]].clamp(min=0).numpy() / TINY.temperature
        np.testing.assert_allclose(maps[b].numpy(), np.kron(layer_map, np.ones((2, 2))), rtol=1e-5, atol=1e-7)
    bilinear = create_method("gradcam", layer="net.layers.2", upsample="bilinear").attribute(model, x, target)
    assert (maps - bilinear).abs().max() > 1e-4
