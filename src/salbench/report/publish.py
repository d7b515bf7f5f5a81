"""Publish a study's report: one versioned, reproducible archive of the report folder and its tables.

``reports/{study}-{version}.tar.gz`` holds ``{study}-{version}/report/`` (index.html, figures, CSVs),
``{study}-{version}/tables/`` (the aggregated tables) and ``{study}-{version}/MANIFEST.json``: the sha256
and size of every other file, the version, the git revision, the sha256 of the study config (its canonical
JSON) and the salbench version. The archive is deterministic (sorted entries, zero times and owners), and
publishing refuses a report that names an absolute path of this machine or a ``file://`` URL, so the
unpacked archive shows the same report anywhere.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import re
import tarfile
from pathlib import Path
from typing import Any

from ..config import canonical_json
from ..provenance import file_sha256, git_revision, package_versions
from ..store import atomic_path

MANIFEST = "MANIFEST.json"
TEXT_SUFFIXES = (".html", ".csv", ".svg", ".json", ".txt", ".md", ".yaml")
VERSION_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]*$")


class PublishError(ValueError):
    """The report cannot be published as it is (missing, or not relocatable)."""


def archive_name(study: str, version: str) -> str:
    """``{study}-{version}.tar.gz``; the version must be a plain token (letters, digits, ``._+-``)."""
    if not VERSION_PATTERN.match(version):
        raise PublishError(f"config key 'report.version': {version!r} must be letters, digits and . _ + - only")
    return f"{study}-{version}.tar.gz"


def absolute_references(folder: Path, forbidden: list[str]) -> list[str]:
    """``file: text`` for every text file under ``folder`` naming ``file://`` or one of the ``forbidden`` paths."""
    found = []
    needles = ["file://", *[f for f in forbidden if f and f != "/"]]
    for path in sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix in TEXT_SUFFIXES):
        text = path.read_text(encoding="utf-8", errors="replace")
        found += [f"{path.relative_to(folder)}: {n}" for n in needles if n in text]
    return found


def manifest(files: dict[str, Path], *, study: str, version: str, config: dict[str, Any]) -> dict[str, Any]:
    """The manifest of ``files`` (archive name -> path): their sha256 and sizes, with what the study ran."""
    return {
        "study": study, "version": version, "git_revision": git_revision(),
        "salbench": package_versions().get("salbench", "unknown"),
        "config_sha256": hashlib.sha256(canonical_json(config).encode()).hexdigest(),
        "files": {name: {"sha256": file_sha256(path), "bytes": path.stat().st_size}
                  for name, path in sorted(files.items())},
    }


def publish(*, study: str, version: str, config: dict[str, Any], report_dir: Path, tables_dir: Path,
            out: Path, forbidden: list[str] | None = None) -> Path:
    """Write the archive ``out`` (see the module docstring) and return it.

    ``forbidden`` are absolute paths the report must not name (default: the working directory and the
    folders holding the report and the tables).
    """
    report_dir, tables_dir, out = Path(report_dir), Path(tables_dir), Path(out)
    if not (report_dir / "index.html").is_file():
        raise PublishError(f"no report to publish: {report_dir / 'index.html'} does not exist")
    forbidden = forbidden if forbidden is not None else sorted(
        {str(Path.cwd().resolve()), str(report_dir.resolve().parent), str(tables_dir.resolve().parent)})
    found = absolute_references(report_dir, forbidden) + absolute_references(tables_dir, forbidden)
    if found:
        raise PublishError("the report names absolute paths, so it would not open elsewhere: " + "; ".join(found[:5]))
    top = f"{study}-{version}"
    files = {f"report/{p.relative_to(report_dir).as_posix()}": p for p in report_dir.rglob("*") if p.is_file()}
    files |= {f"tables/{p.relative_to(tables_dir).as_posix()}": p for p in tables_dir.rglob("*") if p.is_file()}
    files = {name: path for name, path in files.items() if ".tmp-" not in name}
    text = json.dumps(manifest(files, study=study, version=version, config=config), indent=2, sort_keys=True) + "\n"
    with atomic_path(out) as tmp:
        with open(tmp, "wb") as raw, gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as zipped, \
                tarfile.open(fileobj=zipped, mode="w", format=tarfile.PAX_FORMAT) as tar:
            for name, path in sorted(files.items()):
                _add(tar, f"{top}/{name}", path.read_bytes())
            _add(tar, f"{top}/{MANIFEST}", text.encode())
    return out


def _add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    """One regular file with fixed metadata (mode 644, time 0, owner 0), so equal inputs give equal archives."""
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime, info.uid, info.gid, info.uname, info.gname = len(data), 0o644, 0, 0, 0, "", ""
    tar.addfile(info, io.BytesIO(data))


def verify(folder: Path) -> dict[str, Any]:
    """Check an unpacked archive's files against its manifest; the manifest, or :class:`PublishError`."""
    folder = Path(folder)
    listed = json.loads((folder / MANIFEST).read_text())
    present = {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()} - {MANIFEST}
    if present != set(listed["files"]):
        raise PublishError(f"files differ from the manifest: {sorted(present ^ set(listed['files']))[:5]}")
    for name, entry in listed["files"].items():
        if file_sha256(folder / name) != entry["sha256"]:
            raise PublishError(f"{name}: sha256 differs from the manifest")
    return listed
