"""Control baselines: Sobel is model-independent, the centre prior input-independent, random seeded per item."""

from __future__ import annotations

import math

import pytest
import torch

from salbench.methods import create_method
from salbench.methods.controls import seeds_from
from salbench.params import ParamError

from .helpers import SIZE, images, tiny_model

TARGET = torch.tensor([0, 1, 2])


def test_controls_declare_they_ignore_the_model():
    for name in ("random", "sobel", "centre"):
        assert not create_method(name).uses_model


def test_sobel_is_identical_for_two_models():
    x = images(3)
    sobel = create_method("sobel")
    first, second = sobel.attribute(tiny_model(0), x, TARGET), sobel.attribute(tiny_model(1), x, TARGET)
    torch.testing.assert_close(first, second, rtol=0, atol=0)


def test_sobel_is_zero_on_a_constant_image():
    x = torch.full((2, 3, SIZE, SIZE), 0.7)
    edges = create_method("sobel").attribute(None, x, TARGET[:2])
    assert edges.abs().max() < 1e-6  # zero up to conv2d's float32 summation order


def test_sobel_responds_only_at_a_vertical_edge():
    x = torch.zeros(1, 3, SIZE, SIZE)
    x[..., SIZE // 2 :] = 1.0  # left half black, right half white
    edges = create_method("sobel").attribute(None, x, TARGET[:1])[0]
    edge_columns = [SIZE // 2 - 1, SIZE // 2]
    torch.testing.assert_close(edges[:, edge_columns], torch.full((SIZE, 2), 4.0))
    others = [c for c in range(SIZE) if c not in edge_columns]
    assert edges[:, others].abs().max() < 1e-6


def test_centre_is_input_independent_and_peaked_at_the_centre():
    size = 15
    centre = create_method("centre", sigma=0.2)
    a = centre.attribute(None, images(2, seed=1, size=size), TARGET[:2])
    b = centre.attribute(tiny_model(), images(2, seed=2, size=size), TARGET[:2])
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert (a.flatten(1).argmax(1) == 7 * size + 7).all()
    assert a[0, 7, 7] == 1.0
    # one standard deviation (0.2 * 15 = 3 px) from the centre the prior is exp(-1/2)
    assert math.isclose(a[0, 7, 10].item(), math.exp(-0.5), rel_tol=1e-6)
    with pytest.raises(ParamError, match="sigma"):
        create_method("centre", sigma=0)


def test_random_is_deterministic_from_the_seed():
    x = images(3)
    first = create_method("random", seed=3).attribute(None, x, TARGET)
    again = create_method("random", seed=3).attribute(tiny_model(), x, TARGET)
    other = create_method("random", seed=4).attribute(None, x, TARGET)
    torch.testing.assert_close(first, again, rtol=0, atol=0)
    assert not torch.equal(first, other)
    assert not torch.equal(first[0], first[1])
    assert (first >= 0).all() and (first < 1).all()


def test_random_is_independent_of_batch_composition():
    x = images(4)
    method = create_method("random")
    batch = method.attribute(None, x, torch.zeros(4, dtype=torch.long))
    alone = method.attribute(None, x[2:3], torch.zeros(1, dtype=torch.long))
    shuffled = method.attribute(None, x[[3, 2, 0]], torch.zeros(3, dtype=torch.long))
    torch.testing.assert_close(alone[0], batch[2], rtol=0, atol=0)
    torch.testing.assert_close(shuffled, batch[[3, 2, 0]], rtol=0, atol=0)


def test_seeds_from_aliases_items_only_inside_the_block():
    x = images(3)
    shifted = x - 1.0
    method, target = create_method("random"), torch.zeros(3, dtype=torch.long)
    original = method.attribute(None, x, target)
    assert not torch.equal(method.attribute(None, shifted, target), original)
    with seeds_from(shifted[1:], x[1:]):  # items 1 and 2 draw their originals' numbers, item 0 its own
        aliased = method.attribute(None, shifted, target)
    torch.testing.assert_close(aliased[1:], original[1:], rtol=0, atol=0)
    assert not torch.equal(aliased[0], original[0])
    assert not torch.equal(method.attribute(None, shifted, target)[1:], original[1:])
