"""Verified artifacts: every store and score table carries a content checksum; readers refuse a mismatch
with an error naming the file and both hashes (or the missing chunks), and a job refuses a broken input."""

from __future__ import annotations

import re
import shutil

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from salbench.jobs import score
from salbench.report.tables import load_scores
from salbench.store import (CHECKSUM_ATTR, StoreError, content_checksum, open_store, read_table, table_checksum,
                            write_table)

from .helpers import METHODS, METRICS

HASH = r"[0-9a-f]{64}"


def test_every_written_artifact_records_a_checksum_that_verifies(study, reference):
    data = open_store(study / "data.zarr")
    assert data.attrs[CHECKSUM_ATTR] == content_checksum(data)
    for method in METHODS:
        maps = open_store(reference / f"saliency/{method}.zarr")
        assert maps.attrs[CHECKSUM_ATTR] == content_checksum(maps)
        assert maps.attrs["data_store_sha256"] == data.attrs[CHECKSUM_ATTR]  # which input it was computed from
        table = read_table(reference / f"scores/{method}.parquet")
        assert set(table["metric"]) == set(METRICS)


def _copy(src, dst):
    shutil.copytree(src, dst) if src.is_dir() else shutil.copy(src, dst)
    return dst


def test_a_job_refuses_a_tampered_input_store_naming_it_and_both_hashes(study, reference, tmp_path):
    maps = _copy(reference / "saliency/gradient.zarr", tmp_path / "gradient.zarr")
    ds = xr.open_zarr(maps, consolidated=False).load()
    ds["saliency"][0, 0, 0] = ds["saliency"][0, 0, 0] + 1
    ds.to_zarr(maps, mode="a", consolidated=False)
    with pytest.raises(StoreError) as raised:
        score("shapes", "cnn", "gradient", {"pointing_game": METRICS["pointing_game"]}, study / "data.zarr",
              study / "cnn.pt", maps, "cpu", 4, tmp_path / "out.parquet")
    message = str(raised.value)
    assert re.search(rf"store {re.escape(str(maps))} fails its checksum: recorded {HASH}, content {HASH}", message)
    assert not (tmp_path / "out.parquet").exists()


def test_a_deleted_chunk_or_metadata_file_is_named(study, tmp_path):
    data = _copy(study / "data.zarr", tmp_path / "data.zarr")
    chunk = sorted(p for p in (data / "image").rglob("*") if p.is_file() and "/c/" in p.as_posix())[0]
    chunk.unlink()
    with pytest.raises(StoreError, match=rf"{re.escape(str(data))} fails its checksum.*chunks missing: image 1 of 1"):
        open_store(data)
    (data / "zarr.json").unlink()
    with pytest.raises(StoreError, match=rf"store {re.escape(str(data))} cannot be read"):
        open_store(data)


def test_score_tables_verify_and_refuse_tampering_truncation_and_foreign_tables(reference, tmp_path):
    table = read_table(reference / "scores/gradient.parquet")
    assert table_checksum(table) == table_checksum(table.copy())
    tampered = table.copy()
    tampered.loc[0, "value"] = tampered.loc[0, "value"] + 1
    assert table_checksum(tampered) != table_checksum(table)
    # a table whose stored checksum no longer matches its rows: write good rows' checksum over bad rows
    import pyarrow as pa
    import pyarrow.parquet as pq

    good = pq.read_table(reference / "scores/gradient.parquet")
    bad = pa.Table.from_pandas(tampered, preserve_index=False).replace_schema_metadata(good.schema.metadata)
    pq.write_table(bad, tmp_path / "tampered.parquet")
    with pytest.raises(StoreError, match=rf"tampered.parquet fails its checksum: recorded {HASH}, content {HASH}"):
        load_scores([tmp_path / "tampered.parquet"])
    table.to_parquet(tmp_path / "foreign.parquet")
    with pytest.raises(StoreError, match="foreign.parquet has no salbench.content_sha256"):
        load_scores([tmp_path / "foreign.parquet"])
    raw = (reference / "scores/gradient.parquet").read_bytes()
    (tmp_path / "truncated.parquet").write_bytes(raw[: len(raw) // 2])
    with pytest.raises(StoreError, match="truncated.parquet cannot be read"):
        load_scores([tmp_path / "truncated.parquet"])


def test_table_checksum_survives_the_round_trip_of_every_column_kind(tmp_path):
    table = pd.DataFrame({"item": np.array(["a", None, "c"], dtype=object), "target": np.arange(3),
                          "value": [0.5, np.nan, np.inf], "flag": [True, False, True],
                          "maybe": pd.array([True, None, False], dtype="boolean")})
    write_table(table, tmp_path / "t.parquet")
    back = read_table(tmp_path / "t.parquet")
    pd.testing.assert_frame_equal(back.astype({"item": object}), table, check_dtype=False)
