"""Issue 25, case 1: sizes without a bound. Generating, fetching and preparing a data set streams its items
in chunks, so memory does not grow with ``n_eval`` or ``n_train``; a study whose estimated disk footprint
cannot fit is refused before any job, naming the key, while a modest one passes."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest
import yaml

import salbench.data.base as base
import salbench.data.shapes as shapes
from salbench.cli import main
from salbench.config import load_config
from salbench.data.scenes import Scene
from salbench.footprint import check_fits, estimate
from salbench.jobs import fetch_dataset, prepare_dataset
from salbench.store import open_store

from .helpers import snakemake
from workflow_runs import TINY, planned_jobs  # noqa: E402 (on the path through .helpers)

SIZE = 32
ITEM_BYTES = SIZE * SIZE * 4  # an RGB image and its mask
CHUNK_ITEMS = 64  # the data store's item chunk: prepare reads and writes parts of a multiple of it


def _flat_scene(rng, config, targets) -> Scene:
    """A scene as cheap to draw as possible (a flat image, a square mask): the test measures memory, not drawing."""
    image = np.full((config.size, config.size, 3), rng.integers(0, 256), np.uint8)
    masks = np.zeros((len(targets), config.size, config.size), bool)
    masks[:, 4:12, 4:12] = True
    return Scene(image, masks, np.asarray(targets, dtype=np.int64))


def _peak_bytes(tmp_path, n: int) -> int:
    """Peak traced memory of fetching (train and eval splits of ``n`` items) and preparing a shapes data set."""
    params = {"image_size": SIZE, "n_train": n, "n_val": 0, "n_eval": n, "seed": 0}
    tracemalloc.start()
    try:
        fetch_dataset("shapes", params, tmp_path / f"raw{n}")
        prepare_dataset("shapes", "shapes", params, tmp_path / f"raw{n}", tmp_path / f"data{n}.zarr")
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_generating_and_preparing_a_data_set_keeps_memory_bounded_by_a_chunk(tmp_path, monkeypatch):
    monkeypatch.setattr(shapes, "render_scene", _flat_scene)
    monkeypatch.setattr(base, "CHUNK_BYTES", CHUNK_ITEMS * ITEM_BYTES, raising=False)
    _peak_bytes(tmp_path, 8)  # imports and caches first
    small, large = _peak_bytes(tmp_path, 2 * CHUNK_ITEMS), _peak_bytes(tmp_path, 8 * CHUNK_ITEMS)
    extra_data = 6 * CHUNK_ITEMS * ITEM_BYTES  # what holding every item at once would add: 6 chunks, per split
    assert large - small < extra_data / 2, (small, large, extra_data)
    data = open_store(tmp_path / f"data{8 * CHUNK_ITEMS}.zarr")  # every chunk written, and verified
    assert data.sizes["item"] == 8 * CHUNK_ITEMS


def _tiny_with(n_eval: int) -> dict:
    config = yaml.safe_load(TINY.read_text())
    config["datasets"]["shapes"]["params"]["n_eval"] = n_eval
    return config


def test_a_huge_n_eval_is_refused_by_check_config_and_snakemake_before_any_job(tmp_path, capsys):
    path = tmp_path / "huge.yaml"
    path.write_text(yaml.safe_dump(_tiny_with(5_000_000_000)))
    assert main(["check-config", str(path)]) == 2
    line = capsys.readouterr().err.strip()
    assert line.startswith("salbench: config key 'datasets.shapes.params.n_eval': the study needs about ")
    assert " TB " in line and "\n" not in line
    result = snakemake(tmp_path / "work", path, "-n")
    assert result.returncode != 0
    assert "config key 'datasets.shapes.params.n_eval': the study needs about " in result.stderr
    assert "Traceback" not in result.stderr and not planned_jobs(result)
    assert not (tmp_path / "work" / "results").exists() and not (tmp_path / "work" / "resources").exists()


def test_a_modest_study_passes_and_shows_its_estimate(tmp_path, capsys):
    path = tmp_path / "modest.yaml"
    path.write_text(yaml.safe_dump(_tiny_with(2000)))  # 10x the default: still small
    assert main(["check-config", str(path), "--results", str(tmp_path / "results")]) == 0
    out = capsys.readouterr().out
    assert "estimated disk footprint about " in out and "free in " in out


def test_a_run_and_check_config_refuse_a_study_beyond_the_free_space_planning_only_beyond_the_disk(monkeypatch):
    import salbench.footprint as footprint

    config = load_config(TINY)
    need = estimate(config).total
    monkeypatch.setattr(footprint, "disk_space", lambda results: (int(need / 2), int(need * 4), results))
    with pytest.raises(Exception, match=r"config key 'sanity.figure_items': the study needs about .* free in"):
        check_fits(config)
    assert check_fits(config, strict=False).endswith("too little, a run will stop before its first job")
    monkeypatch.setattr(footprint, "disk_space", lambda results: (int(need / 4), int(need / 2), results))
    with pytest.raises(Exception, match=r"more than the whole .* disk"):
        check_fits(config, strict=False)


def _bytes_on_disk(*paths) -> int:
    return sum(f.stat().st_size for p in paths for f in ([p] if p.is_file() else p.rglob("*")) if f.is_file())


def test_the_estimate_is_the_order_of_magnitude_of_a_tiny_run(study, reference):
    from salbench.config import validate_config

    from .helpers import METHODS, METRICS, SHAPES

    config = validate_config({"datasets": {"shapes": {"source": "shapes", "params": SHAPES}},
                              "models": {"cnn": {"arch": "small_cnn"}},
                              "methods": {m: {"params": p} for m, p in METHODS.items()}, "metrics": METRICS,
                              "sanity": {"enabled": False}})
    estimated = estimate(config).parts
    real = {"data": _bytes_on_disk(study / "raw", study / "data.zarr"),
            "maps": _bytes_on_disk(*(reference / "saliency").glob("*.zarr")),
            "tables": _bytes_on_disk(*(reference / "scores").glob("*.parquet"))}
    for part, size in real.items():
        assert size / 10 < estimated[part] < size * 10, (part, estimated[part], size)
