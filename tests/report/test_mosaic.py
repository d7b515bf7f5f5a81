import numpy as np
import pytest
from matplotlib.cm import ScalarMappable
from matplotlib.colors import Normalize

from salbench.report.figures import map_colours
from salbench.report.mosaic import (
    COLUMN_GAP,
    OVERLAY_ALPHA,
    ROW_GAP,
    Cell,
    Row,
    coloured,
    grey,
    map_picture,
    mosaic_figure,
    picture,
)


def test_colours_are_those_imshow_gives_the_map():
    saliency = np.random.default_rng(0).normal(size=(6, 5))
    for signed in (True, False):
        colours = map_colours(saliency, signed)
        mappable = ScalarMappable(Normalize(colours["vmin"], colours["vmax"]), colours["cmap"])
        np.testing.assert_allclose(coloured(saliency, **colours), mappable.to_rgba(saliency), atol=1e-12)


def test_a_map_over_its_input_is_blended_at_alpha_07_and_a_nonfinite_pixel_shows_the_input():
    image = np.stack([np.full((4, 4), 30), np.full((4, 4), 60), np.full((4, 4), 90)]).astype(np.uint8)
    saliency = np.arange(16.0).reshape(4, 4)
    saliency[0, 0] = np.nan
    colours = map_colours(saliency, signed=False)
    under = grey(image)
    np.testing.assert_allclose(under, 60 / 255)
    blended = map_picture(saliency, colours, under=under)
    expected = OVERLAY_ALPHA * coloured(saliency, **colours)[..., :3] + (1 - OVERLAY_ALPHA) * under
    np.testing.assert_allclose(blended[1:, 1:], expected[1:, 1:])
    np.testing.assert_allclose(blended[0, 0], under[0, 0])
    alone = map_picture(saliency, colours)
    np.testing.assert_allclose(alone[0, 0], 1.0)  # white where there is no value
    np.testing.assert_allclose(alone[3, 3], coloured(saliency, **colours)[3, 3, :3])


def test_cells_land_where_the_layout_says_with_titles_and_labels_in_row_order():
    height, width = 10, 20
    rng = np.random.default_rng(1)
    a, b, c = (rng.random((height, width, 3)) for _ in range(3))
    mask = np.zeros((height, width), bool)
    mask[2:5, 3:9] = True
    fig = mosaic_figure([Row("first", [Cell(a, title="a"), None, Cell(b, title="b", mask=mask)]),
                         Row("second", [Cell(c, title="c", boxes=((0.0, 0.0, 5.0, 5.0),))])],
                        column_widths=[1.0, 0.25, 1.0])
    ax = fig.axes[0]
    canvas = np.asarray(ax.images[0].get_array())
    top = round(height * ROW_GAP)
    np.testing.assert_allclose(canvas[top:top + height, :width], a)
    left_b = round(width * (1 + COLUMN_GAP) * 1.25)
    np.testing.assert_allclose(canvas[top:top + height, left_b:left_b + width], b)
    second = round(height * (1 + ROW_GAP) + height * ROW_GAP)
    np.testing.assert_allclose(canvas[second:second + height, :width], c)
    np.testing.assert_allclose(canvas[top:top + height, width + 1:left_b - 1], 1.0)  # the narrow empty column
    assert [t.get_text() for t in ax.texts] == ["first", "second", "a", "b", "c"]
    assert len(ax.patches) == 1 and len(ax.collections) >= 1  # the box and the mask's contour


def test_cells_of_different_sizes_are_refused():
    with pytest.raises(ValueError, match="share one size"):
        mosaic_figure([Row("r", [Cell(np.zeros((4, 4, 3))), Cell(np.zeros((4, 5, 3)))])])


def test_a_grey_input_is_shown_in_grey():
    image = np.arange(12, dtype=np.uint8).reshape(1, 3, 4)
    np.testing.assert_allclose(picture(image), np.repeat(image[0, ..., None] / 255, 3, axis=-1))
