"""Upsampling of layer maps: the CPU's separable bilinear path against ``F.interpolate``."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from salbench.methods.postprocess import upsample


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize(("source", "size"),
                         [((8, 8), (64, 64)), ((7, 5), (224, 96)), ((3, 4), (4, 5)), ((6, 6), (3, 3))])
def test_bilinear_equals_f_interpolate_to_an_ulp(source, size, dtype):
    maps = torch.randn(5, *source, generator=torch.Generator().manual_seed(0), dtype=dtype)
    expected = F.interpolate(maps[:, None], size=size, mode="bilinear", align_corners=False)[:, 0]
    out = upsample(maps, size, "bilinear")
    assert out.shape == expected.shape and out.dtype == dtype
    ulp = torch.finfo(dtype).eps * expected.abs().amax()
    torch.testing.assert_close(out, expected, rtol=0, atol=2 * ulp)


def test_same_size_is_returned_as_is_and_unknown_modes_are_refused():
    maps = torch.rand(2, 4, 4)
    assert upsample(maps, (4, 4), "bilinear") is maps
    with pytest.raises(ValueError, match="bilinear, bicubic, nearest"):
        upsample(maps, (8, 8), "area")
