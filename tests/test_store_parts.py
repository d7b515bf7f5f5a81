"""A store written part by part (salbench.store.write_store_parts) is the store write_store writes whole."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr
import zarr

from salbench.store import (CHECKSUM_ATTR, CHUNK_CHECKSUMS_ATTR, object_strings, open_store, write_store,
                            write_store_parts)


def _dataset(start: int, stop: int) -> xr.Dataset:
    n = stop - start
    return xr.Dataset(
        {"image": (("item", "y", "x"), (np.arange(start * 9, stop * 9) * 37 % 256).astype(np.uint8).reshape(n, 3, 3)),
         "flag": (("item",), np.zeros(n, bool)),  # all fill values: its chunk files must still be written
         "layer_weight": (("layer",), np.arange(2.0))},
        coords={"item": object_strings([f"i{'é' * (i % 3)}{i}" for i in range(start, stop)]),
                "target": ("item", np.arange(start, stop, dtype=np.int64))},
        attrs={"study": "parts"})


def test_parts_give_the_whole_store_and_checksums(tmp_path):
    write_store(_dataset(0, 10), tmp_path / "whole.zarr", item_chunk=4)
    write_store_parts([_dataset(0, 4), _dataset(4, 8), _dataset(8, 10)], tmp_path / "parts.zarr", item_chunk=4)
    whole, parts = open_store(tmp_path / "whole.zarr"), open_store(tmp_path / "parts.zarr")
    xr.testing.assert_identical(whole, parts)
    assert parts.attrs[CHECKSUM_ATTR] == whole.attrs[CHECKSUM_ATTR]
    assert parts.attrs[CHUNK_CHECKSUMS_ATTR] == whole.attrs[CHUNK_CHECKSUMS_ATTR]
    flag = zarr.open_array(tmp_path / "parts.zarr" / "flag", mode="r", zarr_format=3)
    assert flag.nchunks_initialized == flag.nchunks == 3
    assert open_store(tmp_path / "parts.zarr", items=(3, 9))["target"].values.tolist() == list(range(3, 9))


def test_a_part_ending_inside_a_chunk_before_the_last_is_refused(tmp_path):
    with pytest.raises(ValueError, match="only the last part may end inside a chunk of 4 items"):
        write_store_parts([_dataset(0, 3), _dataset(3, 8)], tmp_path / "bad.zarr", item_chunk=4)
    assert not (tmp_path / "bad.zarr").exists()
