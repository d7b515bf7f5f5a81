"""Exact rasterisation: areas match geometry, pixels are in or out by their centres."""

import numpy as np
import pytest

from salbench.data.raster import DISCS, POLYGONS, annulus_mask, bar_mask, polygon_mask, shape_mask


def test_axis_aligned_square_covers_exactly_its_pixels():
    vertices = np.array([[4.0, 4.0], [12.0, 4.0], [12.0, 10.0], [4.0, 10.0]])
    mask = polygon_mask(16, vertices)
    expected = np.zeros((16, 16), bool)
    expected[4:10, 4:12] = True
    np.testing.assert_array_equal(mask, expected)


def test_disc_area_matches_pi_r_squared():
    mask = annulus_mask(200, 100.0, 100.0, 60.0)
    assert mask.sum() == pytest.approx(np.pi * 60**2, rel=0.01)


def test_ring_has_a_hole():
    mask = shape_mask("ring", 64, 32.0, 32.0, 20.0)
    outer, inner = DISCS["ring"]
    assert not mask[32, 32] and mask[32, 32 + int(20 * (outer + inner) / 2)]


@pytest.mark.parametrize("kind", sorted(POLYGONS))
def test_polygon_area_is_rotation_invariant_and_clipped_at_the_border(kind):
    areas = [shape_mask(kind, 256, 128.0, 128.0, 80.0, angle).sum() for angle in (0.0, 0.4, 1.3)]
    assert max(areas) / min(areas) < 1.02
    clipped = shape_mask(kind, 64, 2.0, 2.0, 20.0, 0.3)
    assert 0 < clipped.sum() < shape_mask(kind, 64, 32.0, 32.0, 20.0, 0.3).sum()


def test_bar_is_thin_and_long():
    mask = bar_mask(64, 32.0, 32.0, 20.0, 2.0, 0.0)
    rows, cols = np.nonzero(mask)
    assert np.ptp(cols) + 1 == 20 and np.ptp(rows) + 1 == 2
