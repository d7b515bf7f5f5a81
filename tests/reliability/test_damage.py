"""Damage between runs: ``salbench verify`` finds a flipped byte in a store's chunk and a truncated table, exits 1,
and ``--remove`` removes exactly those; a job that meets a damaged input says which file and what to run, in one
line without a traceback."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from salbench.cli import REDO_HINT, main
from salbench.provenance import file_sha256
from salbench.store import StoreError, object_strings, read_table, write_store, write_table
from salbench.verify import check_store, removal_target, verify

from .helpers import saliency_args, score_args
from .mini_study import MINI, run_snakemake, write_config

from workflow_runs import planned_jobs, without_sections  # noqa: E402, I001 (importable once .helpers has put tests/workflow on the path)

SALBENCH = Path(sys.executable).parent / "salbench"


def flip_byte(path: Path) -> None:
    """Flip one bit of the middle byte of ``path`` (its size and name stay)."""
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))


def truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def chunk_file(store: Path, array: str, index: int) -> Path:
    """The chunk file of ``array`` whose first (item) chunk index is ``index``."""
    chunks = sorted(p for p in (store / array / "c" / str(index)).rglob("*") if p.is_file())
    assert chunks, f"{store}/{array} has no chunk {index}"
    return chunks[0]


def maps_store(path: Path, seed: int, n: int = 16) -> Path:
    values = np.random.default_rng(seed).random((n, 8, 8), dtype=np.float32)
    ds = xr.Dataset({"saliency": (("item", "y", "x"), values)},
                    coords={"item": object_strings([f"i{k}" for k in range(n)])}, attrs={"seed": seed})
    return write_store(ds, path, item_chunk=4)


def score_table(path: Path, seed: int) -> Path:
    rng = np.random.default_rng(seed)
    return write_table(pd.DataFrame({"item": [f"i{k}" for k in range(64)], "value": rng.random(64)}), path)


@pytest.fixture
def results(tmp_path) -> Path:
    """A results folder of two stores and two tables; the stores sit in job output folders as Snakemake marks them."""
    root = tmp_path / "results"
    for name, seed in (("a", 1), ("b", 2)):
        store = maps_store(root / "shapes" / "saliency" / f"{name}.zarr", seed)
        (store / ".snakemake_timestamp").touch()
        score_table(root / "shapes" / "scores" / f"{name}.parquet", seed)
    return root


def test_verify_finds_a_flipped_byte_and_a_truncated_table_and_remove_takes_exactly_those(results, capsys):
    assert main(["verify", str(results)]) == 0
    assert "checked 2 stores, 2 tables and 0 checkpoints" in capsys.readouterr().out
    damaged_store, damaged_table = results / "shapes/saliency/b.zarr", results / "shapes/scores/a.parquet"
    flip_byte(chunk_file(damaged_store, "saliency", 2))
    truncate(damaged_table)
    with pytest.raises(SystemExit) as exited:
        main(["verify", str(results)])
    assert exited.value.code == 1
    out = capsys.readouterr().out
    assert re.search(rf"DAMAGED {re.escape(str(damaged_store))}: .*(item chunks \[2\]|cannot be read)", out)
    assert f"DAMAGED {damaged_table}: table {damaged_table} cannot be read" in out
    assert "2 damaged" in out and "salbench verify --remove" in out
    with pytest.raises(SystemExit):
        main(["verify", "--remove", str(results)])
    assert {p.relative_to(results).as_posix() for p in results.rglob("*.zarr")} == {"shapes/saliency/a.zarr"}
    assert {p.relative_to(results).as_posix() for p in results.rglob("*.parquet")} == {"shapes/scores/b.parquet"}
    assert main(["verify", str(results)]) == 0


@pytest.mark.parametrize("block_items", [4, 1024], ids=["by-blocks", "whole"])
def test_store_checks_by_blocks_and_whole_find_the_same_damage(tmp_path, block_items):
    store = maps_store(tmp_path / "m.zarr", seed=3)
    check_store(store, block_items=block_items)  # intact
    chunk_file(store, "saliency", 3).unlink()
    with pytest.raises(StoreError, match="chunks missing: saliency 1 of 4"):
        check_store(store, block_items=block_items)


def test_verify_sees_a_damaged_attr_checksum_even_when_the_chunks_match(tmp_path):
    """A store larger than a block is checked chunk by chunk and as a whole (``content_sha256``)."""
    store = maps_store(tmp_path / "m.zarr", seed=4)
    meta = store / "zarr.json"
    text = meta.read_text()
    recorded = re.search(r'"content_sha256": "([0-9a-f]{64})"', text).group(1)
    meta.write_text(text.replace(recorded, recorded[::-1]))
    with pytest.raises(StoreError, match="fails its checksum: recorded"):
        check_store(store, block_items=4)


def test_temporaries_of_unfinished_writes_are_not_checked(results):
    shutil.copytree(results / "shapes/saliency/a.zarr", results / "shapes/saliency/.a.zarr.tmp-host-1")
    (results / "shapes/scores/.a.parquet.tmp-host-1").write_bytes(b"half")
    assert [f.error for f in verify([results], echo=lambda line: None)] == [None] * 4


def test_a_damaged_file_inside_a_job_output_folder_removes_the_folder(tmp_path):
    """A table inside a folder a job declared as its output (``salbench labels``): the folder goes; the job reruns."""
    root = tmp_path / "results"
    labels = root / "shapes/cnn/layerwise/labels"
    table = score_table(labels / "merged.parquet", seed=5)
    (labels / ".snakemake_timestamp").touch()
    assert removal_target(table, root) == labels
    loose = score_table(root / "tables/study/scores.parquet", seed=6)
    assert removal_target(loose, root) == loose


def test_verify_checks_a_trained_checkpoint_against_its_training_record(study, tmp_path):
    models = tmp_path / "results/shapes/models"
    models.mkdir(parents=True)
    checkpoint = models / "cnn.pt"
    shutil.copy(study / "cnn.pt", checkpoint)
    (models / "cnn.train.json").write_text(json.dumps({"checkpoint_sha256": file_sha256(checkpoint)}))
    shutil.copy(study / "cnn.pt", models / "fetched.pt")  # no training record: nothing to check it against
    assert [(f.kind, f.path.name, f.error) for f in verify([tmp_path / "results"], echo=lambda line: None)] == [
        ("checkpoint", "cnn.pt", None)]
    flip_byte(checkpoint)
    finding, = verify([tmp_path / "results"], remove_damaged=True, echo=lambda line: None)
    assert finding.error.startswith(f"checkpoint {checkpoint} fails its checksum")
    assert not checkpoint.exists() and (models / "fetched.pt").exists()


def test_verify_names_a_missing_folder_with_exit_2(tmp_path, capsys):
    assert main(["verify", str(tmp_path / "nowhere")]) == 2
    assert "nothing to verify" in capsys.readouterr().err


def test_a_job_meeting_a_damaged_input_says_which_file_and_what_to_run_in_one_line(study, tmp_path, capsys):
    maps = tmp_path / "saliency/gradient.zarr"
    assert main(saliency_args(study, "gradient", maps)) == 0
    flip_byte(chunk_file(maps, "saliency", 0))
    capsys.readouterr()
    assert main(score_args(study, "gradient", maps, tmp_path / "scores/gradient.parquet")) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    assert err.startswith(f"salbench: store {maps} ") and err.endswith(f"({REDO_HINT})")
    assert not (tmp_path / "scores/gradient.parquet").exists()


def test_a_job_meeting_a_damaged_checkpoint_says_so_in_one_line(study, tmp_path, capsys):
    checkpoint = tmp_path / "cnn.pt"
    checkpoint.write_bytes((study / "cnn.pt").read_bytes()[:1000])
    assert main([*saliency_args(study, "gradient", tmp_path / "gradient.zarr"), "--checkpoint", str(checkpoint)]) == 1
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("salbench:")]
    assert len(lines) == 1 and lines[0].startswith(f"salbench: checkpoint {checkpoint} cannot be loaded")


@pytest.mark.slow
@pytest.mark.workflow
def test_verify_remove_then_a_rerun_redoes_exactly_the_damaged_jobs(tmp_path):
    workdir, config = tmp_path / "work", write_config(tmp_path)
    first = run_snakemake(workdir, config)
    assert first.returncode == 0, first.stderr[-4000:]
    results = workdir / "results"
    for table in sorted((results / "tables" / MINI["study"]).glob("*.parquet")):
        read_table(table)  # the report's tables carry their checksum like every other table
    maps, table = results / "shapes/cnn/saliency/gradient.zarr", results / "shapes/cnn/scores/random.parquet"
    flip_byte(chunk_file(maps, "saliency", 0))
    # a job that reads the damaged store (Snakemake may not rerun one by itself: it judges files by time stamps)
    job = run_snakemake(workdir, config, "--forcerun", "score", "results/shapes/cnn/scores/gradient.parquet")
    output = job.stdout + job.stderr
    assert job.returncode != 0 and "Traceback" not in output, output[-4000:]
    assert f"salbench: store {maps.relative_to(workdir)} fails its checksum" in output and REDO_HINT in output

    truncate(table)
    found = subprocess.run([str(SALBENCH), "verify"], cwd=workdir, capture_output=True, text=True)
    assert found.returncode == 1, found.stdout + found.stderr
    assert [line.split(":")[0] for line in found.stdout.splitlines() if line.startswith("DAMAGED")] == [
        "DAMAGED results/shapes/cnn/saliency/gradient.zarr", "DAMAGED results/shapes/cnn/scores/random.parquet"]

    removed = subprocess.run([str(SALBENCH), "verify", "--remove"], cwd=workdir, capture_output=True, text=True)
    assert removed.returncode == 1 and removed.stdout.count("\nremoved ") == 2, removed.stdout + removed.stderr
    plan = run_snakemake(workdir, config, "-n")
    assert without_sections(planned_jobs(plan)) == {"saliency": 1, "score": 2, "report": 1, "all": 1}, \
        plan.stdout[-4000:]
    again = run_snakemake(workdir, config)
    assert again.returncode == 0, again.stderr[-4000:]
    assert planned_jobs(run_snakemake(workdir, config, "-n")) == {}
    clean = subprocess.run([str(SALBENCH), "verify"], cwd=workdir, capture_output=True, text=True)
    assert clean.returncode == 0 and "all match their checksums" in clean.stdout, clean.stdout + clean.stderr
