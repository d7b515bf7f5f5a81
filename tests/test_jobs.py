"""The saliency job's stored dtype: float16 maps are float32 maps rounded, read back as float32 and scored."""

import numpy as np
import pytest

from salbench.cli import main
from salbench.jobs import read_maps, storable_maps
from salbench.store import open_store, read_table

from reliability.helpers import make_study, saliency_args, score_args


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    return make_study(tmp_path_factory.mktemp("study"))


def test_float16_store_holds_the_float32_maps_rounded_and_scores_like_them(study, tmp_path):
    stores = {}
    for dtype in ("float32", "float16"):
        stores[dtype] = tmp_path / f"{dtype}.zarr"
        assert main([*saliency_args(study, "gradient", stores[dtype]), "--maps-dtype", dtype]) == 0
    full, half = open_store(stores["float32"]), open_store(stores["float16"])
    assert half["saliency"].dtype == np.float16 and half.attrs["maps_dtype"] == "float16"
    assert full.attrs["maps_dtype"] == "float32"
    assert read_maps(half).dtype == np.float32
    np.testing.assert_array_equal(read_maps(half), full["saliency"].values.astype(np.float16).astype(np.float32))
    assert not np.array_equal(read_maps(half), full["saliency"].values)  # it was rounded
    for dtype, store in stores.items():
        assert main(score_args(study, "gradient", store, tmp_path / f"{dtype}.parquet")) == 0
    scores = {dtype: read_table(tmp_path / f"{dtype}.parquet") for dtype in stores}
    np.testing.assert_allclose(scores["float16"]["value"], scores["float32"]["value"], atol=0.02)


def test_maps_beyond_float16_range_stay_float32():
    maps = np.array([[[1.0, -70000.0]]], dtype=np.float32)
    stored, dtype = storable_maps(maps, "float16", "m")
    assert dtype == "float32" and stored.dtype == np.float32 and np.array_equal(stored, maps)
    stored, dtype = storable_maps(np.array([[[1.0, np.nan, -60000.0]]], dtype=np.float32), "float16", "m")
    assert dtype == "float16" and stored.dtype == np.float16
