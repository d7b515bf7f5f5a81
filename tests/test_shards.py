"""Sharding: shard ranges, the config key, and gathered shards equal to the unsharded job's store and table."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import xarray as xr

from salbench.cli import main
from salbench.config import ConfigError, read_config_file, validate_config
from salbench.jobs import fetch_dataset, prepare_dataset, saliency, score
from salbench.models import build_model, save_checkpoint
from salbench.shards import (
    SHARDS_ATTR,
    gather,
    gather_maps,
    merged_groups_warning,
    open_items,
    parse_items,
    select_items,
    shard_ranges,
    store_size,
)
from salbench.store import CHECKSUM_ATTR, object_strings, open_store, read_table, write_store

TINY = Path(__file__).parent / "workflow" / "config_tiny.yaml"


# ---- ranges ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("n", "size", "expected"), [
    (8, 4, [(0, 4), (4, 8)]),
    (10, 4, [(0, 4), (4, 8), (8, 10)]),
    (3, 4, [(0, 3)]),
    (4, 1, [(0, 1), (1, 2), (2, 3), (3, 4)]),
    (0, 5, [(0, 0)]),
])
def test_shard_ranges_hand_worked(n, size, expected):
    assert shard_ranges(n, size) == expected


@pytest.mark.parametrize("n", [1, 7, 64, 65, 1000])
@pytest.mark.parametrize("size", [1, 3, 16, 64, 2000])
def test_shard_ranges_partition_the_items_in_order(n, size):
    ranges = shard_ranges(n, size)
    assert ranges[0][0] == 0 and ranges[-1][1] == n
    assert all(stop == start for (_, stop), (start, _) in zip(ranges, ranges[1:]))  # contiguous, no overlap
    assert all(stop - start == size for start, stop in ranges[:-1]) and 0 < ranges[-1][1] - ranges[-1][0] <= size
    assert len(ranges) == -(-n // size)


def test_shard_ranges_reject_bad_sizes():
    with pytest.raises(ValueError, match="shard_size"):
        shard_ranges(10, 0)
    with pytest.raises(ValueError, match="n_items"):
        shard_ranges(-1, 4)


def test_parse_items():
    assert parse_items("0:16") == (0, 16) and parse_items("32:40") == (32, 40)
    for bad in ("16", "a:b", "4:2", "-1:3", "1:2:3"):
        with pytest.raises(ValueError, match=bad):
            parse_items(bad)


def test_bad_items_option_is_a_usage_error(capsys):
    with pytest.raises(SystemExit):
        main(["saliency", "--dataset", "d", "--model", "m", "--method", "gradient", "--data", "x", "--checkpoint",
              "y", "--items", "4:2", "--out", "z"])
    assert "--items" in capsys.readouterr().err


# ---- config ----------------------------------------------------------------------------------------------

def _tiny(**shard_sizes):
    config = read_config_file(TINY)
    for dataset, size in shard_sizes.items():
        config["datasets"][dataset]["shard_size"] = size
    return config


def test_shard_size_must_hold_whole_batches():
    assert validate_config(_tiny(shapes=32))["datasets"]["shapes"]["shard_size"] == 32  # batch_size 16
    assert "shard_size" not in validate_config(_tiny())["datasets"]["shapes"]  # no default: unsharded
    with pytest.raises(ConfigError, match=r"'datasets.shapes_pair.shard_size': 20 is not a multiple of batch_size "
                                          r"\(16\).*16 or 32"):
        validate_config(_tiny(shapes_pair=20))
    with pytest.raises(ConfigError, match="'datasets.shapes.shard_size'"):
        validate_config(_tiny(shapes=0))
    with pytest.raises(ConfigError, match="'datasets.shapes.shard_size'"):
        validate_config(_tiny(shapes="16"))


# ---- gather on synthetic stores ----------------------------------------------------------------------------

def _maps(n=10, **attrs):
    rng = np.random.default_rng(0)
    return xr.Dataset(
        {"saliency": (("item", "y", "x"), rng.random((n, 6, 6), dtype=np.float32))},
        coords={"item": object_strings([f"i{k}" for k in range(n)]), "target": ("item", np.arange(n) % 3)},
        attrs={"method": "gradient", "method_params": {"abs": True}, "seed": 0, "runtime_s": 1.0,
               "provenance": {"host": "a"}, **attrs},
    )


def _write_shards(ds, folder, size, override=None):
    paths = []
    for k, (start, stop) in enumerate(shard_ranges(ds.sizes["item"], size)):
        shard, attrs = select_items(ds, (start, stop))
        shard = shard.copy()
        shard.attrs = {**ds.attrs, **attrs, "runtime_s": 0.5 + k, "provenance": {"host": f"node{k}"},
                       **(override or {}).get(k, {})}
        paths.append(write_store(shard, folder / f"{k}.zarr", item_chunk=3))
    return paths


def test_open_items_reads_a_shard_of_a_store_with_its_attrs(tmp_path):
    path = write_store(_maps(10), tmp_path / "m.zarr", item_chunk=4)
    part, attrs = open_items(path, (2, 5))
    assert list(part["item"].values) == ["i2", "i3", "i4"]
    assert attrs == {"shard": {"start": 2, "stop": 5, "items": 10}}
    whole, none = open_items(path, None)
    assert whole.sizes["item"] == 10 and none == {}


def test_gathered_store_equals_the_whole(tmp_path):
    whole = _maps(10, nonfinite_items=[])
    write_store(whole, tmp_path / "whole.zarr")
    paths = _write_shards(whole, tmp_path, 4, {1: {"nonfinite_items": ["i5"]}, 2: {"nonfinite_items": ["i8"]}})
    gather(paths, tmp_path / "gathered.zarr")
    expected, actual = open_store(tmp_path / "whole.zarr"), open_store(tmp_path / "gathered.zarr")
    assert actual.attrs[CHECKSUM_ATTR] == expected.attrs[CHECKSUM_ATTR]
    assert actual["saliency"].values.tobytes() == expected["saliency"].values.tobytes()
    assert actual["target"].values.tobytes() == expected["target"].values.tobytes()
    assert list(actual["item"].values) == list(expected["item"].values)
    assert store_size(tmp_path / "gathered.zarr") == 10
    attrs = actual.attrs
    assert attrs["runtime_s"] == pytest.approx(0.5 + 1.5 + 2.5)  # run times add up
    assert attrs["nonfinite_items"] == ["i5", "i8"]  # item lists concatenate
    assert attrs["provenance"] == {"host": "node0"} and "shard" not in attrs
    assert [(s["start"], s["stop"], s["provenance"]["host"]) for s in attrs[SHARDS_ATTR]] == \
        [(0, 4, "node0"), (4, 8, "node1"), (8, 10, "node2")]
    assert {k: v for k, v in attrs.items() if k not in ("runtime_s", "provenance", SHARDS_ATTR, "nonfinite_items")} \
        == {k: v for k, v in expected.attrs.items() if k not in ("runtime_s", "provenance", "nonfinite_items")}


def test_gather_refuses_missing_unordered_or_foreign_shards(tmp_path):
    whole = _maps(10)
    paths = _write_shards(whole, tmp_path, 4)
    with pytest.raises(ValueError, match="shards are missing"):
        gather_maps(paths[:2], tmp_path / "out.zarr")
    with pytest.raises(ValueError, match="in order"):
        gather_maps([paths[0], paths[2], paths[1]], tmp_path / "out.zarr")
    with pytest.raises(ValueError, match="not a shard"):
        gather_maps([write_store(whole, tmp_path / "whole.zarr")], tmp_path / "out.zarr")
    other = _write_shards(whole, tmp_path / "other", 4, {1: {"seed": 1}})
    with pytest.raises(ValueError, match=r"differs from .* in attrs seed"):
        gather_maps(other, tmp_path / "out.zarr")
    assert not (tmp_path / "out.zarr").exists()
    with pytest.raises(ValueError, match="expected a .zarr store or a .parquet table"):
        gather(paths, tmp_path / "out.nc")


# ---- the jobs: sharded saliency and score equal the unsharded ones, bit for bit --------------------------------

SHAPES = {"image_size": 16, "n_train": 0, "n_val": 0, "n_eval": 7, "seed": 0}
METRICS = {"deletion": {"metric": "deletion", "params": {"steps": 4}}, "sparseness": {"metric": "sparseness"},
           "max_sensitivity": {"metric": "max_sensitivity", "params": {"n_samples": 1}}}


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    root = tmp_path_factory.mktemp("shards")
    fetch_dataset("shapes", SHAPES, root / "raw")
    prepare_dataset("shapes", "shapes", SHAPES, root / "raw", root / "data.zarr")
    torch.manual_seed(0)
    save_checkpoint(build_model("small_cnn", 6).eval(), root / "cnn.pt", {"num_classes": 6})
    return root


@pytest.mark.parametrize("method", ["random", "smoothgrad"])  # seeded per item content / per (item, sample)
def test_sharded_jobs_equal_the_unsharded_job(study, tmp_path, method):
    root, batch, params = study, 2, {"n_samples": 2} if method == "smoothgrad" else {}
    n = store_size(root / "data.zarr")
    ranges = shard_ranges(n, 2 * batch)
    assert n == 7 and len(ranges) == 2

    def run(out, items=None, maps=None):
        if maps is None:
            saliency("shapes", "cnn", method, method, params, root / "data.zarr", root / "cnn.pt", 0, "cpu", batch,
                     out, items=items)
        else:
            score("shapes", "cnn", method, METRICS, root / "data.zarr", root / "cnn.pt", maps, "cpu", batch, out,
                  method_name=method, method_params=params, items=items, curves_out=out.with_suffix(".curves.parquet"))

    run(tmp_path / "whole.zarr")
    run(tmp_path / "whole.parquet", maps=tmp_path / "whole.zarr")
    for k, items in enumerate(ranges):
        run(tmp_path / f"maps{k}.zarr", items)
        run(tmp_path / f"scores{k}.parquet", items, maps=tmp_path / f"maps{k}.zarr")
    assert main(["gather", *(str(tmp_path / f"maps{k}.zarr") for k in range(2)), "--out",
                 str(tmp_path / "gathered.zarr")]) == 0
    assert main(["gather", *(str(tmp_path / f"scores{k}.parquet") for k in range(2)), "--out",
                 str(tmp_path / "gathered.parquet")]) == 0
    assert main(["gather", *(str(tmp_path / f"scores{k}.curves.parquet") for k in range(2)), "--out",
                 str(tmp_path / "gathered.curves.parquet")]) == 0

    expected, actual = open_store(tmp_path / "whole.zarr"), open_store(tmp_path / "gathered.zarr")
    assert actual["saliency"].values.tobytes() == expected["saliency"].values.tobytes()
    assert actual.attrs[CHECKSUM_ATTR] == expected.attrs[CHECKSUM_ATTR]
    assert open_store(tmp_path / "maps1.zarr").attrs["shard"] == {"start": 4, "stop": 7, "items": 7}
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "gathered.parquet"),
                                  pd.read_parquet(tmp_path / "whole.parquet"), check_exact=True)
    read_table(tmp_path / "gathered.parquet")  # its checksum verifies
    gathered_curves = read_table(tmp_path / "gathered.curves.parquet")
    pd.testing.assert_frame_equal(gathered_curves, read_table(tmp_path / "whole.curves.parquet"), check_exact=True)
    assert set(gathered_curves["metric"]) == {"deletion"} and len(gathered_curves) == 7 * 5
    # missing, overlapping or unsharded tables are refused, scores and curves alike
    for suffix in (".parquet", ".curves.parquet"):
        shards = [tmp_path / f"scores{k}{suffix}" for k in range(2)]
        with pytest.raises(ValueError, match="shards are missing"):
            gather(shards[:1], tmp_path / f"out{suffix}")
        with pytest.raises(ValueError, match="in order"):
            gather([shards[0], shards[0], shards[1]], tmp_path / f"out{suffix}")
        with pytest.raises(ValueError, match="not a shard"):
            gather([tmp_path / f"whole{suffix}"], tmp_path / f"out{suffix}")
        assert not (tmp_path / f"out{suffix}").exists()
    # a shard's score job reads the shard's maps or the whole store, with the same result
    run(tmp_path / "from_whole.parquet", ranges[1], maps=tmp_path / "whole.zarr")
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "from_whole.parquet"),
                                  pd.read_parquet(tmp_path / "scores1.parquet"), check_exact=True)


def test_items_outside_the_store_are_an_error(study, tmp_path):
    with pytest.raises(ValueError, match="outside the data store's 7 items"):
        saliency("shapes", "cnn", "centre", "centre", {}, study / "data.zarr", study / "cnn.pt", 0, "cpu", 2,
                 tmp_path / "x.zarr", items=(4, 9))


def test_gather_tables_refuses_mixed_metrics(study, tmp_path):
    root = study
    saliency("shapes", "cnn", "centre", "centre", {}, root / "data.zarr", root / "cnn.pt", 0, "cpu", 2,
             tmp_path / "m.zarr")
    for k, metrics in enumerate([METRICS, {"sparseness": METRICS["sparseness"]}]):
        score("shapes", "cnn", "centre", metrics, root / "data.zarr", root / "cnn.pt", tmp_path / "m.zarr", "cpu", 2,
              tmp_path / f"s{k}.parquet", method_name="centre", items=(2 * k, 2 * k + 2))
    with pytest.raises(ValueError, match="has metrics"):
        gather([tmp_path / "s0.parquet", tmp_path / "s1.parquet"], tmp_path / "out.parquet")


def test_empty_curves_tables_gather_to_the_unsharded_empty_table(study, tmp_path):
    root, metrics = study, {"sparseness": METRICS["sparseness"]}
    saliency("shapes", "cnn", "centre", "centre", {}, root / "data.zarr", root / "cnn.pt", 0, "cpu", 2,
             tmp_path / "m.zarr")
    for name, items in (("whole", None), ("s0", (0, 4)), ("s1", (4, 7))):
        score("shapes", "cnn", "centre", metrics, root / "data.zarr", root / "cnn.pt", tmp_path / "m.zarr", "cpu", 2,
              tmp_path / f"{name}.parquet", method_name="centre", items=items,
              curves_out=tmp_path / f"{name}.curves.parquet")
    gather([tmp_path / "s0.curves.parquet", tmp_path / "s1.curves.parquet"], tmp_path / "out.curves.parquet")
    gathered = read_table(tmp_path / "out.curves.parquet")
    assert gathered.empty
    pd.testing.assert_frame_equal(gathered, read_table(tmp_path / "whole.curves.parquet"))
    with pytest.raises(ValueError, match="shards are missing"):
        gather([tmp_path / "s0.curves.parquet"], tmp_path / "out.curves.parquet")


def test_a_sharded_study_on_a_cluster_with_merged_groups_is_warned():
    merged = {"gpu": 8, "shard": 1}
    assert "(gpu)" in merged_groups_warning(["imagenet"], merged, local=False)
    assert merged_groups_warning([], merged, local=False) is None  # no checkpoint without a sharded data set
    assert merged_groups_warning(["imagenet"], {"gpu": 1}, local=False) is None
    assert merged_groups_warning(["imagenet"], merged, local=True) is None  # a local run forms no group jobs
