"""Stores: atomic writes, checksums verified on read, clear errors naming the file."""

import json
import os

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from salbench.store import (
    CHUNK_CHECKSUMS_ATTR,
    StoreError,
    atomic_path,
    first_items,
    object_strings,
    open_store,
    read_table,
    write_store,
    write_table,
)


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


def _chunk_file(path, index):
    """The file of item chunk ``index`` of the saliency array (zarr v3's default chunk key encoding)."""
    return path / "saliency" / "c" / str(index) / "0" / "0"


@pytest.mark.parametrize("items", [(0, 10), (3, 7), (4, 8), (9, 10), (5, 5)])
def test_reading_some_items_equals_reading_all_then_selecting(tmp_path, items):
    path = write_store(_maps(10), tmp_path / "m.zarr", item_chunk=4)
    part, whole = open_store(path, items=items), open_store(path).isel(item=slice(*items))
    xr.testing.assert_identical(part, whole)


def test_reading_some_items_reads_and_verifies_only_their_chunks(tmp_path):
    path = write_store(_maps(10), tmp_path / "m.zarr", item_chunk=4)
    assert len(open_store(path).attrs[CHUNK_CHECKSUMS_ATTR]["chunks"]) == 3
    _chunk_file(path, 2).unlink()  # items 8 and 9: a fill value now, which the whole store's checksum notices
    with pytest.raises(StoreError, match="fails its checksum"):
        open_store(path)
    assert list(open_store(path, items=(1, 8))["item"].values) == [f"i{k}" for k in range(1, 8)]
    with pytest.raises(StoreError, match=r"item chunks \[2\] \(items 7:9 read\).*chunks missing: saliency 1 of 3"):
        open_store(path, items=(7, 9))


def test_tampered_chunk_or_unchunked_variable_fails_the_partial_checksum(tmp_path):
    ds = _maps(10).assign_coords(channel=("channel", np.arange(3)))
    path = write_store(ds, tmp_path / "m.zarr", item_chunk=4)
    stored = xr.open_zarr(path, consolidated=False).load()
    stored["saliency"][5, 0, 0] = 42.0
    stored.to_zarr(path, mode="a", consolidated=False)
    with pytest.raises(StoreError, match=r"item chunks \[1\]"):
        open_store(path, items=(2, 6))
    assert open_store(path, items=(0, 4))["saliency"].shape == (4, 8, 8)  # chunk 0 is intact
    stored["channel"] = ("channel", np.array([7, 8, 9]))
    stored.to_zarr(path, mode="a", consolidated=False)
    with pytest.raises(StoreError, match="variables without an item dimension"):
        open_store(path, items=(0, 4))


def test_store_without_chunk_checksums_is_read_whole_and_item_ranges_are_checked(tmp_path):
    path = write_store(_maps(10), tmp_path / "m.zarr", item_chunk=4)
    meta = path / "zarr.json"
    record = json.loads(meta.read_text())
    del record["attributes"][CHUNK_CHECKSUMS_ATTR]  # as written before chunk checksums were recorded
    meta.write_text(json.dumps(record))
    xr.testing.assert_identical(open_store(path, items=(3, 7)), open_store(path).isel(item=slice(3, 7)))
    with pytest.raises(ValueError, match="item range 8:11 is outside the data store's 10 items"):
        open_store(path, items=(8, 11))
    assert first_items(path, 3).sizes["item"] == 3 and first_items(path, 50).sizes["item"] == 10


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
