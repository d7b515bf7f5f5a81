"""The published archive: every file with its sha256 in the manifest, no absolute path, the same report unpacked
elsewhere, byte-identical archives from identical inputs."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from salbench.report.publish import MANIFEST, PublishError, archive_name, publish, verify

ROOT = Path(__file__).resolve().parents[2]


def _publish(built, out: Path) -> Path:
    study, _ = built
    kw = study.kwargs
    return publish(study="synthetic", version="1.0", config=kw["config"], report_dir=kw["out_dir"],
                   tables_dir=kw["tables_dir"], out=out)


def test_archive_unpacks_elsewhere_to_the_same_report(built, tmp_path):
    study, index = built
    archive = _publish(built, tmp_path / archive_name("synthetic", "1.0"))
    assert archive.name == "synthetic-1.0.tar.gz"
    with tarfile.open(archive) as tar:
        names = tar.getnames()
        assert all(n.startswith("synthetic-1.0/") for n in names)
        tar.extractall(tmp_path / "elsewhere", filter="data")
    unpacked = tmp_path / "elsewhere" / "synthetic-1.0"
    listed = verify(unpacked)
    assert listed["version"] == "1.0" and len(listed["config_sha256"]) == 64 and listed["git_revision"]
    originals = {f"report/{p.relative_to(index.parent).as_posix()}": p for p in index.parent.rglob("*") if p.is_file()}
    originals |= {f"tables/{p.relative_to(study.kwargs['tables_dir']).as_posix()}": p
                  for p in study.kwargs["tables_dir"].rglob("*") if p.is_file()}
    assert set(listed["files"]) == set(originals)
    for name, path in originals.items():
        assert listed["files"][name]["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest(), name
        assert (unpacked / name).read_bytes() == path.read_bytes(), name
    html = (unpacked / "report" / "index.html").read_text()
    for absolute in (str(ROOT), str(index.parent), str(tmp_path), "file://"):
        assert absolute not in html
    assert "tables/claims/claims.csv" in html and (unpacked / "report" / "tables" / "claims" / "claims.csv").is_file()


def test_archives_of_the_same_report_are_byte_identical(built, tmp_path):
    first = _publish(built, tmp_path / "a.tar.gz").read_bytes()
    second = _publish(built, tmp_path / "b.tar.gz").read_bytes()
    assert first == second


def test_a_tampered_file_fails_verification(built, tmp_path):
    archive = _publish(built, tmp_path / "x.tar.gz")
    with tarfile.open(archive) as tar:
        tar.extractall(tmp_path / "x", filter="data")
    folder = tmp_path / "x" / "synthetic-1.0"
    (folder / "tables" / "leaderboard.parquet").write_text("tampered")
    with pytest.raises(PublishError, match="leaderboard.parquet"):
        verify(folder)


def test_a_report_naming_an_absolute_path_is_refused(built, tmp_path):
    study, index = built
    copy = tmp_path / "report"
    shutil.copytree(index.parent, copy)
    (copy / "index.html").write_text(index.read_text() + f'<img src="{copy}/figures/metrics.png">')
    with pytest.raises(PublishError, match="absolute paths"):
        publish(study="synthetic", version="1", config={}, report_dir=copy, tables_dir=study.kwargs["tables_dir"],
                out=tmp_path / "out.tar.gz")
    assert not (tmp_path / "out.tar.gz").exists()
    with pytest.raises(PublishError, match="report.version"):
        archive_name("synthetic", "1/../x")


def test_cli_publish_writes_the_archive(built, tmp_path):
    study, _ = built
    kw = study.kwargs
    out = tmp_path / "cli.tar.gz"
    result = subprocess.run([sys.executable, "-m", "salbench", "publish", "--config-json", json.dumps(kw["config"]),
                             "--report", str(kw["out_dir"]), "--tables", str(kw["tables_dir"]), "--version", "2",
                             "--out", str(out)], capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    with tarfile.open(out) as tar:
        manifest = json.loads(tar.extractfile(f"synthetic-2/{MANIFEST}").read())
    assert manifest["study"] == "synthetic" and manifest["version"] == "2"
