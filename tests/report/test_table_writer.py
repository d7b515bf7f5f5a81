"""Every table the report writes under ``results/tables/<study>/`` goes through one writer: parquet with its
checksum (read back by ``read_table``, checked by ``salbench verify``), CSV as text."""

import pandas as pd
import pytest

from salbench.report.tables import write_frame
from salbench.store import StoreError, read_table


def test_every_parquet_table_of_the_report_is_checksummed(built):
    study, _ = built
    written = sorted(study.kwargs["tables_dir"].glob("*.parquet"))
    assert {p.name for p in written} >= {"leaderboard.parquet", "ranks.parquet", "claims.parquet"}
    for path in written:
        pd.testing.assert_frame_equal(read_table(path), pd.read_parquet(path))


def test_write_frame_checksums_parquet_and_writes_csv_as_text(tmp_path):
    frame = pd.DataFrame({"method": ["a", "b"], "value": [0.5, float("nan")],
                          "beats_controls": pd.array([True, None], dtype="boolean")})
    pd.testing.assert_frame_equal(read_table(write_frame(frame, tmp_path / "t.parquet")), frame)
    assert write_frame(frame, tmp_path / "t.csv").read_text().splitlines()[0] == "method,value,beats_controls"
    frame.to_parquet(tmp_path / "plain.parquet")  # what the report wrote before: refused by the project's reader
    with pytest.raises(StoreError, match="has no salbench.content_sha256"):
        read_table(tmp_path / "plain.parquet")
    with pytest.raises(ValueError, match="expected a .parquet or .csv name"):
        write_frame(frame, tmp_path / "t.json")
