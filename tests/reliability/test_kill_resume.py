"""A job killed with SIGKILL mid-write leaves no store at its path; a rerun completes it exactly."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from salbench.store import StoreError, open_store

from .helpers import (SLOW_WRITES, assert_same_results, kill_once_chunks_land, run_jobs, saliency_args, start_jobs,
                      start_store_writer, temporaries)


@pytest.mark.slow
def test_killed_saliency_job_leaves_no_store_and_a_rerun_equals_an_uninterrupted_run(study, reference, tmp_path):
    out = tmp_path / "saliency" / "smoothgrad.zarr"
    job = saliency_args(study, "smoothgrad", out)
    kill_once_chunks_land(start_jobs([job], prelude=SLOW_WRITES), out)
    assert not out.exists()  # nothing that downstream jobs (or Snakemake) could take for a finished store
    assert len(temporaries(out)) == 1  # the half store, under a name no rule reads
    result = run_jobs([job])
    assert result.returncode == 0, result.stderr[-3000:]
    assert temporaries(out) == []  # the killed writer's temporary was cleaned up
    assert_same_results(reference, tmp_path, ["saliency/smoothgrad.zarr"])


def test_killed_writer_keeps_the_previous_store_whole_and_a_rewrite_completes(tmp_path):
    out = tmp_path / "m.zarr"
    first = start_store_writer(out, seed=1)
    assert first.wait() == 0, first.stderr.read()
    before = open_store(out)
    kill_once_chunks_land(start_store_writer(out, seed=2, slow_s=30), out)
    after = open_store(out)  # still the complete previous store, and it verifies
    assert after.attrs["seed"] == 1 and after.attrs["content_sha256"] == before.attrs["content_sha256"]
    assert len(temporaries(out)) == 1
    again = start_store_writer(out, seed=2)
    assert again.wait() == 0, again.stderr.read()
    expected = np.random.default_rng(2).random((16, 32, 32), dtype=np.float32)
    assert open_store(out)["saliency"].values.tobytes() == expected.tobytes()
    assert temporaries(out) == []


def test_a_half_written_store_moved_into_place_is_refused(tmp_path):
    """Even a temporary renamed by hand (or by a foreign tool) into the final path fails verification."""
    out = tmp_path / "m.zarr"
    kill_once_chunks_land(start_store_writer(out, seed=3, slow_s=30), out)
    shutil.move(temporaries(out)[0], out)
    with pytest.raises(StoreError, match=rf"{out} fails its checksum.*chunks missing: saliency 3 of 4"):
        open_store(out)
