"""Stores: atomic writes, checksums verified on read, clear errors naming the file."""

import os

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from salbench.store import StoreError, atomic_path, object_strings, open_store, read_table, write_store, write_table


def _maps(n=5):
    rng = np.random.default_rng(0)
    return xr.Dataset(
        {"saliency": (("item", "y", "x"), rng.random((n, 8, 8), dtype=np.float32))},
        coords={"item": object_strings([f"i{k}" for k in range(n)]), "target": ("item", np.arange(n))},
        attrs={"method": "gradient", "params": {"a": 1}},
    )


def test_round_trip_keeps_values_coords_and_attrs(tmp_path):
    ds = _maps()
    write_store(ds, tmp_path / "m.zarr", item_chunk=2)
    back = open_store(tmp_path / "m.zarr")
    np.testing.assert_array_equal(back["saliency"].values, ds["saliency"].values)
    assert list(back["item"].values) == ["i0", "i1", "i2", "i3", "i4"]
    assert back.attrs["params"] == {"a": 1} and "content_sha256" in back.attrs


def test_tampered_store_fails_checksum(tmp_path):
    path = write_store(_maps(), tmp_path / "m.zarr")
    ds = xr.open_zarr(path, consolidated=False).load()
    ds["saliency"][0, 0, 0] = 42.0
    ds.to_zarr(path, mode="a", consolidated=False)
    with pytest.raises(StoreError, match="fails its checksum") as info:
        open_store(path)
    assert str(path) in str(info.value)


def test_missing_or_truncated_store_is_a_clear_error(tmp_path):
    with pytest.raises(StoreError, match="does not exist"):
        open_store(tmp_path / "absent.zarr")
    path = write_store(_maps(), tmp_path / "m.zarr")
    (path / "zarr.json").unlink()
    with pytest.raises(StoreError, match="cannot be read"):
        open_store(path)


def test_failed_write_leaves_nothing(tmp_path):
    target = tmp_path / "out.zarr"
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.mkdir()
            (tmp / "part").write_text("half")
            raise RuntimeError("killed")
    assert os.listdir(tmp_path) == []


def test_rewrite_replaces_previous_store(tmp_path):
    write_store(_maps(5), tmp_path / "m.zarr")
    write_store(_maps(3), tmp_path / "m.zarr")
    assert open_store(tmp_path / "m.zarr").sizes["item"] == 3
    assert sorted(os.listdir(tmp_path)) == ["m.zarr"]


def test_table_checksum_ignores_the_sign_of_nan(tmp_path):
    """-NaN (e.g. from 0 * -inf) and NaN are the same missing value; parquet may not keep the sign bit."""
    table = pd.DataFrame({"value": np.array([1.0, -np.nan, np.nan])})
    assert np.signbit(table["value"].to_numpy()[1])
    write_table(table, tmp_path / "t.parquet")
    pd.testing.assert_frame_equal(read_table(tmp_path / "t.parquet"), table)
