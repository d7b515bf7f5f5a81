"""The disk-footprint estimate of a study config (salbench.footprint)."""

from __future__ import annotations

import copy
import re
from pathlib import Path

import pytest

from salbench.config import ConfigError, load_config
from salbench.footprint import check_fits, disk_space, estimate, human_bytes
TINY = Path(__file__).resolve().parent / "workflow" / "config_tiny.yaml"

CONFIG = load_config(TINY)


def _with(change) -> dict:
    config = copy.deepcopy(CONFIG)
    change(config)
    return config


def _n_eval(n: int):
    return lambda config: config["datasets"]["shapes"]["params"].update(n_eval=n)


def test_human_bytes():
    assert [human_bytes(v) for v in (999, 1000, 1234567, 5e15, 7e18)] == ["999 B", "1.0 kB", "1.2 MB", "5.0 PB",
                                                                          "7000.0 PB"]


def _extra_maps(*changes) -> float:
    """Map bytes that 10000 more eval items of ``shapes`` add, with ``changes`` applied."""
    sizes = [estimate(_with(lambda c: [change(c) for change in (*changes, _n_eval(n))])).parts["maps"]
             for n in (1000, 11000)]
    return sizes[1] - sizes[0]


def test_maps_and_tables_grow_with_the_eval_items_and_the_key_that_drives_them_is_named():
    small, large = estimate(_with(_n_eval(1000))), estimate(_with(_n_eval(11000)))
    assert _extra_maps() == pytest.approx(10000 * 5 * 64 * 64 * 4)  # each of the 5 methods of the one model
    assert large.parts["tables"] > small.parts["tables"] and large.parts["sanity"] == small.parts["sanity"]
    assert large.largest_key() == "datasets.shapes.params.n_eval"
    assert _extra_maps(lambda c: c.update(maps_dtype="float16")) == pytest.approx(_extra_maps() / 2)
    # a sharded data set's shards stay beside the gathered store
    assert _extra_maps(lambda c: c["datasets"]["shapes"].update(shard_size=100)) == pytest.approx(2 * _extra_maps())


def test_a_selection_narrows_the_pairs_counted():
    everything = estimate(CONFIG).parts["maps"]
    one = estimate(_with(lambda c: c["datasets"]["shapes"].update(methods=["gradient"]))).parts["maps"]
    assert one < everything


def test_free_space_is_read_on_the_nearest_existing_folder(tmp_path):
    free, total, folder = disk_space(tmp_path / "not" / "yet" / "results")
    assert folder == tmp_path and 0 <= free <= total


def test_a_huge_study_is_refused_even_when_planning():
    with pytest.raises(ConfigError, match=r"^config key 'datasets.shapes.params.n_eval': the study needs about"):
        check_fits(_with(_n_eval(5_000_000_000)), strict=False)
    assert check_fits(CONFIG).startswith("estimated disk footprint about ")


@pytest.mark.parametrize("path, value", [(("datasets", "shapes", "params", "image_size"), 10**9),
                                         (("datasets", "shapes", "params", "n_train"), 10**12),
                                         (("grid", "n"), 10**6),
                                         (("metrics", "deletion", "params", "steps"), 10**12)])
def test_the_key_named_is_the_size_that_makes_the_study_too_big(path, value):
    def change(config):
        node = config
        for part in path[:-1]:
            node = node[part]
        node[path[-1]] = value

    with pytest.raises(ConfigError, match=rf"^config key '{re.escape('.'.join(path))}': the study needs"):
        check_fits(_with(change), strict=False)
