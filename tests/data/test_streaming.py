"""Splits made, written and read in chunks (issue 25, case 1): the files and items are those of the whole
split at once, whatever the chunk size."""

from __future__ import annotations

import io
import zipfile

import numpy as np
import pytest

import salbench.data.base as base
from salbench.data import create_dataset
from salbench.data.npz import iter_npz, read_npz, write_npz, write_npz_chunks
from salbench.jobs import fetch_dataset, prepare_dataset
from salbench.store import CHECKSUM_ATTR, CHUNK_CHECKSUMS_ATTR, open_store

from .test_voc import served_voc  # noqa: F401 (a fixture)


def _whole_npz(arrays: dict[str, np.ndarray]) -> bytes:
    """The .npz numpy's own writer makes from whole arrays (with the fixed member date write_npz uses)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name in sorted(arrays):
            info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            with archive.open(info, "w", force_zip64=True) as member:
                np.lib.format.write_array(member, np.asarray(arrays[name]), allow_pickle=False)
    return buffer.getvalue()


def _chunks(sizes: list[int]) -> list[dict[str, np.ndarray]]:
    rng = np.random.default_rng(0)
    chunks, start = [], 0
    for size in sizes:
        chunks.append({"images": rng.integers(0, 256, (size, 4, 4, 3), dtype=np.uint8),
                       "masks": rng.random((size, 4, 4)) < 0.5, "targets": np.arange(start, start + size),
                       "ids": np.asarray([f"item-{'x' * (i % 7)}{i}" for i in range(start, start + size)], dtype=str)})
        start += size
    return chunks


def _joined(chunks: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    return {name: np.concatenate([chunk[name] for chunk in chunks]) for name in chunks[0]}


@pytest.mark.parametrize("sizes", [[5], [2, 0, 3, 1], [0]], ids=["one chunk", "ragged chunks", "empty"])
def test_a_chunked_npz_is_the_whole_arrays_npz_byte_for_byte(tmp_path, sizes):
    chunks = _chunks(sizes)  # the string ids widen from chunk to chunk
    write_npz_chunks(tmp_path / "chunked.npz", chunks)
    assert (tmp_path / "chunked.npz").read_bytes() == _whole_npz(_joined(chunks))
    write_npz(tmp_path / "whole.npz", _joined(chunks))
    assert (tmp_path / "whole.npz").read_bytes() == _whole_npz(_joined(chunks))
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no spool or temporary left


@pytest.mark.parametrize("rows", [1, 3, 100])
def test_iter_npz_reads_the_arrays_back_in_chunks_of_rows(tmp_path, rows):
    chunks = _chunks([4, 3])
    write_npz_chunks(tmp_path / "a.npz", chunks)
    read = list(iter_npz(tmp_path / "a.npz", rows))
    assert [len(part["targets"]) for part in read][:-1] == [rows] * (len(read) - 1)
    for name, values in read_npz(tmp_path / "a.npz").items():
        np.testing.assert_array_equal(np.concatenate([part[name] for part in read]), values)
    write_npz_chunks(tmp_path / "empty.npz", _chunks([0]))
    assert [len(part["targets"]) for part in iter_npz(tmp_path / "empty.npz", rows)] == [0]


def test_chunks_of_different_kinds_or_names_are_refused(tmp_path):
    first, second = _chunks([2, 2])
    with pytest.raises(ValueError, match="differ from the first chunk"):
        write_npz_chunks(tmp_path / "a.npz", [first, {"images": second["images"]}])
    with pytest.raises(ValueError, match="a chunk of rows"):
        write_npz_chunks(tmp_path / "b.npz", [first, {**second, "masks": second["masks"][:, :2]}])


@pytest.mark.parametrize("name", ["shapes", "shapes_pair"])
def test_shapes_are_the_same_items_in_any_chunking(name):
    source = create_dataset(name, n_eval=7, image_size=16)
    whole = next(source.generate_chunks("eval", images=100))
    for images in (1, 3):
        parts = list(source.generate_chunks("eval", images))
        assert [len(p) for p in parts] == [source.objects * min(images, 7 - i) for i in range(0, 7, images)]
        joined = base.concat_items(parts)
        assert joined.item_ids == whole.item_ids and joined.image_ids == whole.image_ids
        for field in ("images", "targets", "masks"):
            np.testing.assert_array_equal(getattr(joined, field), getattr(whole, field))
    assert len(list(create_dataset(name, n_eval=0, image_size=16).generate_chunks("eval"))) == 1


def test_a_data_store_prepared_in_parts_has_the_checksums_of_one_prepared_whole(tmp_path, monkeypatch):
    params = {"image_size": 16, "n_train": 0, "n_val": 0, "n_eval": 150, "seed": 0}
    fetch_dataset("shapes", params, tmp_path / "raw")
    prepare_dataset("shapes", "shapes", params, tmp_path / "raw", tmp_path / "whole.zarr")
    monkeypatch.setattr(base, "CHUNK_BYTES", 1)  # parts of one store chunk (64 items): three parts
    prepare_dataset("shapes", "shapes", params, tmp_path / "raw", tmp_path / "parts.zarr")
    whole, parts = open_store(tmp_path / "whole.zarr"), open_store(tmp_path / "parts.zarr")
    assert parts.attrs[CHECKSUM_ATTR] == whole.attrs[CHECKSUM_ATTR]
    assert parts.attrs[CHUNK_CHECKSUMS_ATTR] == whole.attrs[CHUNK_CHECKSUMS_ATTR]
    assert {k: v for k, v in parts.attrs.items()} == {k: v for k, v in whole.attrs.items()}
    assert open_store(tmp_path / "parts.zarr", items=(60, 130)).sizes["item"] == 70


def test_an_annotated_photo_set_fetched_a_few_items_at_a_time_is_the_same_file(served_voc, tmp_path, monkeypatch):
    source = create_dataset("voc2007", **served_voc)
    source.fetch(tmp_path / "whole")
    monkeypatch.setattr(base, "CHUNK_BYTES", 1)  # one item per chunk
    source.fetch(tmp_path / "chunked")
    assert (tmp_path / "chunked" / "eval.npz").read_bytes() == (tmp_path / "whole" / "eval.npz").read_bytes()
